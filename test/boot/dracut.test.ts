// The dracut module (dracut/90mosctl) as a distribution would use it: Debian's dracut builds an
// initramfs with `-m "base udev-rules mosctl"` from this machine's binaries and the guest kernel's
// modules, and it boots the machine disk: create-boot-fs against the embedded CA, then dracut's own
// switch_root into the assembled hostfs, whose systemd starts.
import { t } from 'tap';
import { execFile } from 'node:child_process';
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { needs } from '../support/env.js';
import { copyDisk, runVm, VM_PROGRAMS } from '../support/vm.js';
import { vmSystem } from '../support/vm-system.js';

const execFileP = promisify(execFile);
const top = fileURLToPath(new URL('../..', import.meta.url));
t.setTimeout(30 * 60_000);

t.test('an initramfs built by Debian dracut with the 90mosctl module boots the machine', { skip: needs({ root: true, programs: [...VM_PROGRAMS, 'dracut'] }) }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  // dracut finds modules only under its base dir: a private copy of the installed one plus ours.
  const base = join(dir, 'dracut');
  await cp('/usr/lib/dracut', base, { recursive: true, verbatimSymlinks: true });
  await symlink(join(top, 'dracut', '90mosctl'), join(base, 'modules.d', '90mosctl'));
  const conf = join(dir, 'conf.d');
  await mkdir(conf);
  await writeFile(join(conf, 'mosctl.conf'), `mosctl_bundle=${join(top, 'dist', 'bundle')}\nmosctl_ca=${sys.ca}\n`);
  const out = join(dir, 'initrd.img');
  const started = Date.now();
  await execFileP('dracut', [
    '-q', '--force', '--no-hostonly', '--no-early-microcode', '--zstd', '--kver', sys.kernel.kver,
    '--kmoddir', join(sys.kernel.modules, 'lib', 'modules', sys.kernel.kver), '--conf', '/dev/null', '--confdir', conf,
    '-m', 'base udev-rules mosctl', out,
  ], { env: { ...process.env, dracutbasedir: base }, maxBuffer: 64 * 1024 * 1024 });
  t.comment(`dracut built the initramfs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const { stdout } = await execFileP('lsinitrd', [out], { env: { ...process.env, dracutbasedir: base }, maxBuffer: 64 * 1024 * 1024 }).catch(() => ({ stdout: '' }));
  if (stdout) t.match(stdout, /usr\/lib\/mosctl\/mosctl\.mjs/, 'the bundle is inside');

  const disk = join(dir, 'disk.img');
  await copyDisk(sys.disk, disk);
  const run = await runVm(t, {
    kernel: sys.kernel.vmlinux, initrd: out, append: `${sys.append} systemd.show_status=1`,
    disks: [{ file: disk }], timeoutMs: 300_000, until: /Welcome to .*Debian|mosctl-boot: FAILED.*\n/,
  });
  t.match(run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.0'].digest}) of generation 1 writable at /sysroot (layers through dm-verity: 2)`, 'the dracut hook assembled hostfs through dm-verity', { diag: run.console.slice(-8000) });
  t.match(run.console, /Welcome to .*Debian/, "dracut switched root and the hostfs's systemd started");
  t.comment(`boot to systemd: ${(run.durationMs / 1000).toFixed(1)} s`);
});
