// The live medium: `mosb mkboot` makes a UEFI ISO whose UKI (systemd's stub + Debian's kernel + the
// initramfs of `mosb initrd build` with its manifest CA) boots in OVMF from a CD-ROM; the initrd finds
// the medium by its volume label, verifies the live manifest against its own CA, mounts the livecd
// target from the medium's layout as a writable root in RAM and switch_roots into it; systemd starts.
// Then the refusal: a medium whose live manifest is signed by a foreign CA never switch_roots.
import { t } from 'tap';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_STUB, createKeyset, createProject, mkboot, publish, projectPaths } from '../../src/build/index.js';
import { needs } from '../support/env.js';
import { OVMF_VARS, runVm, VM_PROGRAMS } from '../support/vm.js';
import { PRODUCT, vmSystem, type VmSystem } from '../support/vm-system.js';

const missingFile = [DEFAULT_STUB, OVMF_VARS].find((f) => !existsSync(f));
const skip = needs({ root: true, programs: [...VM_PROGRAMS, 'xorriso', 'mkfs.vfat', 'mcopy', 'objcopy'] }) || (missingFile ? `${missingFile} is missing (apt-get install systemd-boot-efi ovmf)` : false);
t.setTimeout(30 * 60_000);

const liveYaml = (images: string) => [
  'version: 1',
  `product: ${PRODUCT}`,
  'update_type: complete',
  'targets:',
  `  - {service_name: livecd, source: "oci:${images}:hostfs-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}}`,
  '',
].join('\n');

const SCRIPT = `set -x
findmnt -n -o FSTYPE,OPTIONS /
findmnt -n -o FSTYPE /atomfs-store
ls /run/mosctl/medium/oci/index.json
echo written > /root/live-write && cat /root/live-write
`;

async function liveRelease(sys: VmSystem, dir: string, signer: { cert: string; key: string }, tag: string): Promise<string> {
  const file = join(dir, `${tag}.yaml`);
  await writeFile(file, liveYaml(sys.images));
  await publish({ manifestFile: file, repo: `oci:${join(dir, 'rel')}`, name: `machine/livecd:${tag}`, cert: signer.cert, key: signer.key });
  return `oci:${join(dir, 'rel')}:${tag}`;
}

t.test('a UEFI machine boots the live ISO into a root in RAM', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  const signer = projectPaths({ keyset: 'vm', project: 'rel', dataHome: sys.xdg });
  const live = await liveRelease(sys, dir, signer, 'live-1.0');
  const iso = join(dir, 'live.iso');
  const r = await mkboot({
    live, install: [sys.releases['1.0']], ca: sys.ca, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: iso,
    cmdline: 'console=ttyS0 panic=-1 quiet loglevel=3 mos.onfail=poweroff mos.timeout=20',
  });
  t.comment(`mkboot: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${r.seconds.toFixed(1)} s, tags ${r.tags.join(', ')}`);
  t.same(r.tags, ['live-1.0', '1.0'], 'the medium carries the live manifest and the release');

  const share = join(dir, 'share');
  await mkdir(share);
  await writeFile(join(share, 'run.sh'), SCRIPT);
  const vars = join(dir, 'vars.fd');
  await copyFile(OVMF_VARS, vars);
  const run = await runVm(t, {
    uefi: { vars }, cdrom: iso, memMiB: 2048,
    shares: [{ path: share, tag: 'vmtest' }],
    timeoutMs: 400_000,
    until: /VMTEST-DONE|mosctl-boot: FAILED|Kernel panic/,
  });
  const out = await readFile(join(share, 'out.log'), 'utf8').catch(() => '(no out.log)');
  const diag = `--- console (${(run.durationMs / 1000).toFixed(1)} s) ---\n${run.console.slice(-12000)}\n--- guest ---\n${out}`;
  t.match(run.console, /BdsDxe: starting Boot\d+ "UEFI QEMU QEMU CD-ROM/, 'OVMF booted the CD-ROM', { diag });
  t.match(run.console, /mosctl-boot: medium \/dev\/sr0 mounted at \/run\/mosctl\/medium/, 'the initrd found the medium by its label');
  t.match(run.console, /mosctl-boot: mounted livecd \(sha256:[0-9a-f]{64}\) writable at \/newroot \(layers through dm-verity: 2\)/, 'the livecd target is the root, every layer through dm-verity', { diag });
  t.match(run.console, /VMTEST-BOOTED hostfs=1.0/, 'systemd came up in the live root', { diag });
  t.match(out, /^overlay /m, 'the root is an overlay');
  t.match(out, /^tmpfs$/m, 'the store is in RAM');
  t.match(out, /oci\/index.json/, 'the medium stays mounted for the installer');
  t.match(out, /^written$/m, 'the live root is writable');
  const at = run.lines.find((l) => l.text.includes('VMTEST-BOOTED'))?.atMs;
  t.comment(`live boot: power-on to marker ${at !== undefined ? (at / 1000).toFixed(1) : '?'} s`);
});

t.test('a medium whose live manifest a foreign CA signed never boots', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  const xdg = join(dir, 'xdg');
  await createKeyset({ name: 'foreign', dataHome: xdg });
  const foreign = await createProject({ keyset: 'foreign', project: 'p', dataHome: xdg });
  const live = await liveRelease(sys, dir, foreign, 'live-1.0');
  // mkboot itself verifies first: against the machine's CA it refuses to build.
  await t.rejects(mkboot({ live, ca: sys.ca, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: join(dir, 'x.iso') }), { code: 'TRUST_CERT_UNTRUSTED' }, 'mkboot refuses a manifest the CA did not sign');
  // Built against the foreign CA, the medium still carries the machine's initrd: the boot is refused there.
  const iso = join(dir, 'foreign.iso');
  await mkboot({ live, ca: foreign.caCert, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: iso, cmdline: 'console=ttyS0 panic=-1 quiet loglevel=3 mos.onfail=poweroff mos.timeout=20' });
  const vars = join(dir, 'vars.fd');
  await copyFile(OVMF_VARS, vars);
  const run = await runVm(t, { uefi: { vars }, cdrom: iso, memMiB: 2048, timeoutMs: 300_000, until: /mosctl-boot: FAILED.*|switch_root uptime|Kernel panic/ });
  t.match(run.console, /mosctl-boot: FAILED: .*(certificate|CA|trust)/i, 'the initrd refuses the foreign-signed live manifest', { diag: run.console.slice(-6000) });
  t.notMatch(run.console, /switch_root uptime/, 'and never switch_roots');
});
