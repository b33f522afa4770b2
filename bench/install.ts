// bench/install: the installer story in QEMU (OVMF, TCG): `mosb mkboot` time and ISO size; VM 1 boots
// the ISO and installs onto an empty disk (power-on to the live root, to the installer, and the install
// by phase: verify, partition, copy, boot chain); then, in the same guest, the same release's layout is
// copied with `cp -a` onto the same machine-store filesystem (the file-copy floor: skopeo is not in the
// guest image) and the copy phase is given as a ratio to it; VM 2 boots the installed disk: power-on to
// the marker. Needs root and what .ci/setup installs. Usage: npx tsx bench/install.ts [--show]
// (`npm run demo:vm`: --show prints both consoles' boot and install lines first).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkboot, projectPaths, publish } from '../src/build/index.js';
import { OVMF_VARS, runVm, type VmRun } from '../test/support/vm.js';
import { PRODUCT, vmSystem } from '../test/support/vm-system.js';

const work = mkdtempSync(join(tmpdir(), 'mosctl-bench-install-'));
const fakeTest = { teardown: (fn: () => void) => process.on('exit', fn) } as unknown as Parameters<typeof runVm>[0];
const QUIET = 'console=ttyS0 panic=-1 quiet loglevel=3 mos.onfail=poweroff mos.timeout=20';
const at = (run: VmRun, re: RegExp) => {
  const l = run.lines.find((x) => re.test(x.text));
  return l ? l.atMs / 1000 : NaN;
};

for (const n of [1, 2]) rmSync(join(tmpdir(), `mosctl-bench-install-vm${n}.log`), { force: true });
try {
  const sys = await vmSystem((l) => console.error(l));
  const signer = projectPaths({ keyset: 'vm', project: 'rel', dataHome: sys.xdg });
  const yaml = join(work, 'live.yaml');
  writeFileSync(yaml, ['version: 1', `product: ${PRODUCT}`, 'update_type: complete', 'targets:', `  - {service_name: livecd, source: "oci:${sys.images}:hostfs-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}}`, ''].join('\n'));
  await publish({ manifestFile: yaml, repo: `oci:${join(work, 'rel')}`, name: 'machine/livecd:live-1.0', cert: signer.cert, key: signer.key });
  const iso = join(work, 'install.iso');
  const m = await mkboot({
    live: `oci:${join(work, 'rel')}:live-1.0`, install: [sys.releases['1.0']], ca: sys.ca, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: iso,
    cmdline: `${QUIET} mos.install=1.0 mos.install.disk=/dev/vda mos.install.after=stay`, machineCmdline: QUIET,
  });
  const disk = join(work, 'disk.img');
  execFileSync('truncate', ['-s', '3G', disk]);
  const vars = join(work, 'vars.fd');
  copyFileSync(OVMF_VARS, vars);
  const share = join(work, 'share');
  mkdirSync(share);
  // After the install (the unit runs before the test driver): the file-copy floor onto the same filesystem.
  writeFileSync(join(share, 'run.sh'), `mkdir -p /mnt/store && mount /dev/vda3 /mnt/store
sync; echo 3 > /proc/sys/vm/drop_caches
s=$(date +%s.%N); cp -a /run/mosctl/medium/oci /mnt/store/cp-floor; sync; e=$(date +%s.%N)
echo "CP-FLOOR $(echo "$e - $s" | bc 2>/dev/null || awk "BEGIN{print $e - $s}") s $(du -sb /mnt/store/cp-floor | cut -f1) bytes"
rm -rf /mnt/store/cp-floor; umount /mnt/store
`);
  const v1 = await runVm(fakeTest, { logFile: join(tmpdir(), 'mosctl-bench-install-vm1.log'), uefi: { vars }, cdrom: iso, memMiB: 2048, disks: [{ file: disk, bootIndex: 1 }], shares: [{ path: share, tag: 'vmtest' }], timeoutMs: 900_000, until: /VMTEST-DONE|mosctl-boot: FAILED|Kernel panic/ });
  const out = readFileSync(join(share, 'out.log'), 'utf8');
  const phases = /phases: verify ([\d.]+) s, partition ([\d.]+) s, copy ([\d.]+) s, boot ([\d.]+) s/.exec(v1.console);
  const floor = /CP-FLOOR ([\d.]+) s (\d+) bytes/.exec(out);
  if (!phases || !v1.console.includes('mosctl-install: DONE')) throw new Error(`the install did not finish:\n${v1.console.slice(-4000)}`);
  const v2 = await runVm(fakeTest, { logFile: join(tmpdir(), 'mosctl-bench-install-vm2.log'), uefi: { vars }, memMiB: 1024, disks: [{ file: disk, bootIndex: 1 }], timeoutMs: 600_000, until: /VMTEST-BOOTED|mosctl-boot: FAILED|Kernel panic/ });
  const copy = Number(phases[3]);
  const rows: [string, string][] = [
    ['mkboot (ISO build)', `${m.seconds.toFixed(1)} s, ISO ${(m.bytes / 2 ** 20).toFixed(1)} MiB (UKI ${(m.uki.bytes / 2 ** 20).toFixed(1)} MiB, ${m.images} images)`],
    ['VM 1 power-on to live root (switch_root)', `${at(v1, /switch_root uptime/).toFixed(1)} s`],
    ['VM 1 power-on to installer start', `${at(v1, /mosctl-install: installing/).toFixed(1)} s`],
    ['install: verify / partition / copy / boot chain', `${phases[1]} / ${phases[2]} / ${phases[3]} / ${phases[4]} s`],
    ['copy phase vs cp -a of the same layout, same fs, same guest', floor ? `${copy.toFixed(1)} s vs ${Number(floor[1]).toFixed(1)} s (${(Number(floor[2]) / 2 ** 20).toFixed(0)} MiB): ratio ${(copy / Number(floor[1])).toFixed(2)}` : `cp floor not measured:\n${out}`],
    ['VM 2 power-on to marker (installed disk)', `${at(v2, /VMTEST-BOOTED/).toFixed(1)} s${v2.console.includes('VMTEST-BOOTED hostfs=1.0') ? '' : ' (DID NOT BOOT)'}`],
  ];
  if (process.argv.includes('--show')) {
    const clean = (c: string) => c.replace(/\x1b\[[0-9;=]*[a-zA-Z]/g, '').split(/\r?\n/).filter((l) => /BdsDxe: starting|mosctl-boot:|mosctl-install:|live-install\[|mosctl\[|VMTEST-BOOTED/.test(l)).map((l) => l.replace(/^\[\s*[\d.]+\] /, '').trimEnd());
    console.log('--- VM 1: the live ISO, the installer ---');
    for (const l of clean(v1.console)) console.log(l);
    console.log('--- VM 2: the installed disk alone ---');
    for (const l of clean(v2.console)) console.log(l);
    console.log('---');
  }
  for (const [k, v] of rows) console.log(`${k.padEnd(62)} ${v}`);
  console.log(`consoles: ${join(tmpdir(), 'mosctl-bench-install-vm1.log')}, ${join(tmpdir(), 'mosctl-bench-install-vm2.log')}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
