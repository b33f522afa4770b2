// The whole story, in OVMF (UEFI) under TCG: `mosb mkboot` → VM 1 boots the ISO from a CD-ROM with an
// empty virtio disk; the live system's installer (mos-live-install.service, mos.install= on the UKI's
// command line) runs `mosctl install --partition` and powers off. The first attempt is killed mid-install
// (QEMU SIGKILL) and the second attempt reuses the disk. Then, in the same live boot, the refusals: the
// live medium as the target, a disk too small, a release signed by a foreign CA (nothing partitioned).
// VM 2 boots that disk alone with the same EFI variables: UEFI → UKI → initrd → create-boot-fs through
// dm-verity → systemd → mosctl boot; it updates to 1.1 from a 9p share and VM 3 boots 1.1.
import { t, type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_STUB, buildUki, createBootkit, createKeyset, createProject, createSiteBundle, mkboot, publish, projectPaths } from '../../src/build/index.js';
import { needs } from '../support/env.js';
import { OVMF_VARS, runVm, VM_PROGRAMS, type VmOptions, type VmRun } from '../support/vm.js';
import { PRODUCT, vmSystem, yaml, type VmSystem } from '../support/vm-system.js';

const missingFile = [DEFAULT_STUB, OVMF_VARS].find((f) => !existsSync(f));
const skip = needs({ root: true, programs: [...VM_PROGRAMS, 'xorriso', 'mkfs.vfat', 'mcopy', 'objcopy', 'truncate'] }) || (missingFile ? `${missingFile} is missing (apt-get install systemd-boot-efi ovmf)` : false);
t.setTimeout(40 * 60_000);

const QUIET = 'console=ttyS0 panic=-1 quiet loglevel=3 mos.onfail=poweroff mos.timeout=20';

/** A live manifest: the livecd target is the hostfs image (Debian, mosctl, the installer unit). */
async function liveRelease(sys: VmSystem, dir: string, signer: { cert: string; key: string }, tag: string): Promise<string> {
  const file = join(dir, `${tag}.yaml`);
  await writeFile(file, [
    'version: 1', `product: ${PRODUCT}`, 'update_type: complete', 'targets:',
    `  - {service_name: livecd, source: "oci:${sys.images}:hostfs-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}}`, '',
  ].join('\n'));
  await publish({ manifestFile: file, repo: `oci:${join(dir, 'rel')}`, name: `machine/livecd:${tag}`, cert: signer.cert, key: signer.key });
  return `oci:${join(dir, 'rel')}:${tag}`;
}

function explain(run: VmRun, out = ''): string {
  return `--- console (${(run.durationMs / 1000).toFixed(1)} s) ---\n${run.console.slice(-10000)}\n--- guest script ---\n${out.slice(-5000)}`;
}

const at = (run: VmRun, re: RegExp) => {
  const l = run.lines.find((x) => re.test(x.text));
  return l ? (l.atMs / 1000).toFixed(1) : '?';
};

async function sparse(file: string, size: string): Promise<string> {
  execFileSync('truncate', ['-s', size, file]);
  return file;
}

/**
 * Release 1.0 published as mos publishes it: the keyset (a copy of the cached `vm` keyset, same CA) gets a
 * bootkit holding the installed machine's UKI, and publish --project adds it as the `bootkit` target.
 */
async function bootkitRelease(sys: VmSystem, dir: string): Promise<{ release: string; uki: string }> {
  const xdg = join(dir, 'xdg-bootkit');
  await mkdir(join(xdg, 'machine', 'trust', 'keys'), { recursive: true });
  execFileSync('cp', ['-a', join(sys.xdg, 'machine', 'trust', 'keys', 'vm'), join(xdg, 'machine', 'trust', 'keys', 'vm')]);
  const uki = join(dir, 'machine.efi');
  await buildUki({ kernel: sys.kernel.vmlinuz, initrd: sys.initrd, cmdline: `root=soci:name=mosboot,repo=local ${QUIET}`, out: uki });
  await createBootkit({ keyset: 'vm', uki, dataHome: xdg });
  const file = join(dir, 'install-1.0.yaml');
  await writeFile(file, yaml(sys.images, '1.0'));
  const r = await publish({ manifestFile: file, repo: `oci:${join(dir, 'rel')}`, name: 'machine/install:1.0', project: 'vm:rel', dataHome: xdg });
  if (r.added.join() !== 'bootkit') throw new Error(`publish added ${JSON.stringify(r.added)}, not the bootkit`);
  return { release: `oci:${join(dir, 'rel')}:1.0`, uki };
}

t.test('live ISO → install --partition (after a crash) → the disk boots on its own → update → reboot', { skip }, async (t: Test) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  const signer = projectPaths({ keyset: 'vm', project: 'rel', dataHome: sys.xdg });
  const live = await liveRelease(sys, dir, signer, 'live-1.0');
  const bk = await bootkitRelease(sys, dir);
  // The medium carries the live UKI only (no boot/mosctl.efi): the installer takes the UKI it puts on
  // the ESP from the release's bootkit target.
  const liveUki = join(dir, 'live.efi');
  await buildUki({ kernel: sys.kernel.vmlinuz, initrd: sys.initrd, cmdline: `root=soci:name=live-1.0,dev=LABEL=OCI-BOOT ${QUIET} mos.install=1.0 mos.install.disk=/dev/vda mos.install.after=stay`, out: liveUki });
  const iso = join(dir, 'install.iso');
  // The medium also carries a site bundle: the live system takes it, and the installer puts it on the ESP.
  const siteXdg = join(dir, 'xdg-bootkit');
  await createProject({ keyset: 'vm', project: 'site', dataHome: siteXdg, site: true });
  const siteBundle = join(dir, 'site-bundle.json');
  await createSiteBundle({ project: 'vm:site', version: 2, site: 'installsite', env: ['SITE=installsite'], out: siteBundle, dataHome: siteXdg });
  const m = await mkboot({ live, install: [bk.release], ca: sys.ca, uki: liveUki, siteBundle, out: iso });
  t.equal(m.machineUki, false, 'the medium carries no machine UKI');
  t.same(m.siteBundle, { site: 'installsite', version: 2 });
  t.comment(`mkboot: ISO ${(m.bytes / 2 ** 20).toFixed(1)} MiB in ${m.seconds.toFixed(1)} s`);
  const disk = await sparse(join(dir, 'disk.img'), '3G');
  const small = await sparse(join(dir, 'small.img'), '200M');
  const spare = await sparse(join(dir, 'spare.img'), '3G');
  const vars = join(dir, 'vars.fd');
  await copyFile(OVMF_VARS, vars);

  // A release signed by another CA, on a 9p share, for the refusal.
  const share = join(dir, 'share');
  await mkdir(share);
  const xdg = join(dir, 'xdg');
  await createKeyset({ name: 'foreign', dataHome: xdg });
  const foreign = await createProject({ keyset: 'foreign', project: 'p', dataHome: xdg });
  const fy = join(dir, 'foreign.yaml');
  await writeFile(fy, ['version: 1', `product: ${PRODUCT}`, 'update_type: complete', 'targets:', `  - {service_name: hostfs, source: "oci:${sys.images}:hostfs-1.0", version: "1.0.0", service_type: hostfs, network: {type: host}}`, ''].join('\n'));
  await publish({ manifestFile: fy, repo: `oci:${join(share, 'foreign')}`, name: 'machine/install:1.0', cert: foreign.cert, key: foreign.key });
  await writeFile(join(share, 'run.sh'), `
echo "--- the live root"
findmnt -n -o FSTYPE /; findmnt -n -o FSTYPE /atomfs-store
echo written > /root/live-write && cat /root/live-write
echo "--- the live medium as the target"
mosctl install --partition --disk /dev/sr0 oci:/run/mosctl/medium/oci:1.0; echo "rc=$?"
echo "--- a disk too small"
mosctl install --partition --disk /dev/vdb oci:/run/mosctl/medium/oci:1.0; echo "rc=$?"
echo "--- a foreign release"
mosctl install --partition --disk /dev/vdc oci:/run/vmtest/foreign:1.0; echo "rc=$?"
echo "--- several disks, none chosen"
mosctl install --partition oci:/run/mosctl/medium/oci:1.0; echo "rc=$?"
for d in vdb vdc; do sfdisk -d /dev/$d > /dev/null 2>&1 && echo "$d: has a partition table" || echo "$d: untouched"; done
`);
  const liveVm = (extra: Partial<VmOptions>): VmOptions => ({
    uefi: { vars }, cdrom: iso, memMiB: 2048, timeoutMs: 600_000,
    disks: [{ file: disk, bootIndex: 1 }, { file: small }, { file: spare }],
    until: /VMTEST-DONE|mosctl-boot: FAILED|Kernel panic/, ...extra,
  });

  // Attempt 1: killed while it copies the release onto the disk.
  const crash = await runVm(t, liveVm({ until: /mosctl-install: installing/, untilDelayMs: 12_000 }));
  t.ok(crash.matched, 'the first attempt started installing, then QEMU was killed', { diag: explain(crash) });
  const table = spawnSync('sfdisk', ['-d', disk], { encoding: 'utf8' }).stdout;
  t.comment(`after the crash the disk has ${table.includes('machine-store') ? "mosctl's" : 'no'} table`);

  // Attempt 2: the same medium and disk; the installer reuses the layout and finishes.
  const inst = await runVm(t, liveVm({ shares: [{ path: share, tag: 'vmtest' }] }));
  const out = await readFile(join(share, 'out.log'), 'utf8').catch(() => '(no out.log)');
  const c = inst.console;
  t.match(c, /mosctl-boot: mounted livecd \(sha256:[0-9a-f]{64}\) writable at \/newroot \(layers through dm-verity: 2\)/, 'the live root was verified and mounted from the medium', { diag: explain(inst, out) });
  t.match(c, /installed [0-9a-f-]+ \(manifest [0-9a-f]{12}, signed by [^)]+\) as generation 1/, 'the installer installed the release', { diag: explain(inst, out) });
  t.match(c, /mosctl-boot: site bundle installsite version 2: [^\n]*written into the new root/, "the live system took the medium's site bundle", { diag: explain(inst, out) });
  t.match(c, /disk \/dev\/vda.*: esp \/dev\/vda1 128 MiB, machine-config \/dev\/vda2 64 MiB, machine-store \/dev\/vda3 \d+ MiB, machine-scratch \/dev\/vda4 \d+ MiB/, 'onto mos\'s four partitions');
  t.match(c, /UKI on the ESP: EFI\/BOOT\/BOOTX64\.EFI, EFI\/mosctl\/mosctl\.efi; boot entry mosctl; from the bootkit target 1\.0\.0 \(/, "the bootkit target's UKI is on the ESP and registered with efibootmgr");
  t.match(c, /mosctl-install: DONE/, 'the installer finished');
  t.match(c, /BdsDxe: starting Boot\d+ "UEFI QEMU QEMU CD-ROM/, 'OVMF booted the CD-ROM');
  t.match(c, /mosctl-boot: medium \/dev\/sr0 mounted at \/run\/mosctl\/medium/, 'the initrd found the medium by its label');
  t.match(out, /--- the live root\noverlay\ntmpfs\nwritten\n/, 'the live root is a writable overlay with its store in RAM', { diag: out });
  const phases = /phases: (verify [\d.]+ s, partition [\d.]+ s, copy [\d.]+ s, boot [\d.]+ s)/.exec(c)?.[1];
  t.match(out, /--- the live medium as the target\n(?:.*\n)*?mosctl: disk \/dev\/sr0: has a mounted filesystem \(the live medium or a disk in use\)[^\n]*\n(.*\n)?rc=3/, 'the medium is refused as the target', { diag: out });
  t.match(out, /--- a disk too small\n(?:.*\n)*?mosctl: disk \/dev\/vdb: is too small: 200 MiB, the release needs at least \d+ MiB[^\n]*\n(.*\n)?rc=3/, 'a disk too small is refused, naming the sizes');
  t.match(out, /--- a foreign release\n.*mosctl: .*(does not chain to a trusted manifest CA|not in)[^\n]*\n(.*\n)?rc=4/, 'a release signed by a foreign CA is refused');
  t.match(out, /--- several disks, none chosen\n(?:.*\n)*?mosctl: install --partition: several disks could be installed onto: \/dev\/vda \(3072 MiB\), \/dev\/vdb \(200 MiB\), \/dev\/vdc \(3072 MiB\)[^\n]*\n(.*\n)?rc=3/, 'with no --disk and several candidates it asks for one (never the medium)');
  t.match(out, /vdb: untouched\nvdc: untouched/, 'nothing was partitioned by a refusal');

  // VM 2: the installed disk alone, the same EFI variables (the boot entry the installer made).
  const share2 = join(dir, 'share2');
  await mkdir(share2);
  await writeFile(join(share2, 'run.sh'), `set -x\nefibootmgr | grep -i mosctl\nmosctl status\nmosctl update oci:/run/vmtest/rel:1.1\n`);
  execFileSync('cp', ['-r', sys.releases['1.1'].replace(/^oci:/, '').replace(/:1\.1$/, ''), join(share2, 'rel')]);
  const boot = await runVm(t, { uefi: { vars }, memMiB: 1024, disks: [{ file: disk, bootIndex: 1 }], shares: [{ path: share2, tag: 'vmtest' }], timeoutMs: 400_000, until: /VMTEST-DONE|mosctl-boot: FAILED|Kernel panic/ });
  const out2 = await readFile(join(share2, 'out.log'), 'utf8').catch(() => '(no out.log)');
  t.match(boot.console, /BdsDxe: starting Boot\d+ "mosctl"/, 'the firmware started the mosctl boot entry', { diag: explain(boot, out2) });
  t.match(boot.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.0'].digest}) of generation 1 writable at /newroot (layers through dm-verity: 2)`, 'the initrd in the UKI assembled the installed hostfs through dm-verity', { diag: explain(boot, out2) });
  t.match(boot.console, /VMTEST-BOOTED hostfs=1.0 boot=active/, 'systemd runs it and mosctl boot succeeded', { diag: explain(boot, out2) });
  t.match(boot.console, /mosctl-boot: site bundle installsite version 2: [^\n]*written into the new root/, "the installed machine took the bundle the installer put on its ESP", { diag: explain(boot, out2) });
  t.match(out2, /generation 2/, 'the installed machine updated to 1.1', { diag: out2 });

  const again = await runVm(t, { uefi: { vars }, memMiB: 1024, disks: [{ file: disk, bootIndex: 1 }], timeoutMs: 400_000, until: /VMTEST-BOOTED|mosctl-boot: FAILED|Kernel panic/ });
  t.match(again.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 2 `, 'after a reboot the disk boots 1.1', { diag: explain(again) });
  t.match(again.console, /VMTEST-BOOTED hostfs=1.1/);

  t.comment(`install: VM 1 power-on to live root ${at(inst, /switch_root uptime/)} s, to installed ${at(inst, /mosctl-install: DONE/)} s; ${phases ?? 'phases ?'}`);
  t.comment(`VM 2: power-on to marker ${at(boot, /VMTEST-BOOTED/)} s; VM 3 ${at(again, /VMTEST-BOOTED/)} s; crash run ${(crash.durationMs / 1000).toFixed(1)} s`);
});

t.test('a medium whose live manifest a foreign CA signed never boots', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  const xdg = join(dir, 'xdg');
  await createKeyset({ name: 'foreign', dataHome: xdg });
  const foreign = await createProject({ keyset: 'foreign', project: 'p', dataHome: xdg });
  const live = await liveRelease(sys, dir, foreign, 'live-1.0');
  // mkboot verifies first: against the machine's CA it refuses to build.
  await t.rejects(mkboot({ live, ca: sys.ca, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: join(dir, 'x.iso') }), { code: 'TRUST_CERT_UNTRUSTED' }, 'mkboot refuses a manifest the CA did not sign');
  // Built against the foreign CA, the medium still carries the machine's initrd: the boot is refused there.
  const iso = join(dir, 'foreign.iso');
  await mkboot({ live, ca: foreign.caCert, kernel: sys.kernel.vmlinuz, initrd: sys.initrd, out: iso, cmdline: QUIET });
  const vars = join(dir, 'vars.fd');
  await copyFile(OVMF_VARS, vars);
  const run = await runVm(t, { uefi: { vars }, cdrom: iso, memMiB: 2048, timeoutMs: 300_000, until: /mosctl-boot: FAILED.*|switch_root uptime|Kernel panic/ });
  t.match(run.console, /mosctl-boot: FAILED: .*does not chain to a trusted manifest CA/, 'the initrd refuses the foreign-signed live manifest', { diag: explain(run) });
  t.notMatch(run.console, /switch_root uptime/, 'and never switch_roots');
});
