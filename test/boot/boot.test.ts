// A real boot (QEMU, TCG): the initramfs from `mosb initrd build` finds the partitions by GPT label,
// runs mosctl create-boot-fs against its own manifest CA (every layer through dm-verity), moves the
// mounts into the new root and switch_roots into the Debian hostfs, whose systemd runs `mosctl boot`
// (fs-only target mounted, container target RUNNING under LXC). Then an update from a USB disk, a reboot
// into it, a rollback and a reboot back. The console of every boot is printed when a check fails.
import { t, type Test } from 'tap';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { copyDisk, runVm, VM_PROGRAMS, type VmRun } from '../support/vm.js';
import { vmSystem, type VmSystem } from '../support/vm-system.js';

const skip = needs({ root: true, programs: VM_PROGRAMS });
t.setTimeout(30 * 60_000);

/** Boots the machine disk with the update stick attached; the guest runs `script` (sh) after boot. */
async function bootWith(tt: Test, sys: VmSystem, disk: string, script: string, name: string, until = /VMTEST-DONE|mosctl-boot: FAILED|Kernel panic/): Promise<{ run: VmRun; out: string }> {
  const share = join(tt.testdirName, `share-${name}`);
  await mkdir(share, { recursive: true });
  await writeFile(join(share, 'run.sh'), script);
  const run = await runVm(tt, {
    kernel: sys.kernel.vmlinux,
    initrd: sys.initrd,
    append: sys.append,
    disks: [{ file: disk }, { file: sys.usb, readonly: true }],
    shares: [{ path: share, tag: 'vmtest' }],
    timeoutMs: 300_000,
    until,
  });
  const out = await readFile(join(share, 'out.log'), 'utf8').catch(() => '(no out.log)');
  return { run, out };
}

function explain(run: VmRun, out: string): string {
  return `--- console (${(run.durationMs / 1000).toFixed(1)} s) ---\n${run.console.slice(-12000)}\n--- guest script output ---\n${out.slice(-6000)}`;
}

t.test('first boot, runtime tamper, update from a USB disk, reboot, rollback, reboot', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const disk = join(t.testdir({}), 'disk.img');
  await copyDisk(sys.disk, disk);
  const hex = sys.toolsLayer.digest.slice('sha256:'.length);
  const blob = `/atomfs-store/mos/blobs/sha256/${hex}`;
  // The random data sits after the squashfs superblock: a byte in the middle of the data area.
  const poke = Math.floor(sys.toolsLayer.hashOffset / 2);

  const first = await bootWith(t, sys, disk, `
set -x
cat /mnt/atom/tools/VERSION
lxc-info -n web -s
for d in /dev/mapper/*-verity; do veritysetup status "$(basename "$d")" | grep -E 'status|root hash'; done
grep -c ' squashfs ' /proc/mounts
# runtime tamper: change one byte of the mounted tools layer on the store disk, drop caches, read it back
orig=$(od -An -to1 -j ${poke} -N 1 ${blob} | tr -d ' ')
printf '\\377' | dd of=${blob} bs=1 seek=${poke} conv=notrunc 2>/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
if cat /mnt/atom/tools/random.bin > /dev/null 2> /tmp/read.err; then echo TAMPER-READ-OK; else echo "TAMPER-READ-FAILED: $(cat /tmp/read.err)"; fi
dmesg | grep -m1 'verity.*corrupted' || true
printf "\\\\$orig" | dd of=${blob} bs=1 seek=${poke} conv=notrunc 2>/dev/null
sync
# the update, from the stick: an oci: layout on /dev/vdb
mkdir -p /mnt/usb && mount -o ro /dev/vdb /mnt/usb
mosctl update oci:/mnt/usb/rel:1.1
umount /mnt/usb
`, 'first');
  const c1 = first.run.console;
  t.match(c1, `mosctl-boot: mounted hostfs (${sys.hostfs['1.0'].digest}) of generation 1 writable at /newroot (layers through dm-verity: 2)`, 'the initrd assembled hostfs 1.0 of generation 1, every layer through dm-verity', { diag: explain(first.run, first.out) });
  t.match(c1, /mosctl\[\d+\]: generation 1: 2 of 2 targets active/, 'mosctl boot in the booted host started both targets');
  t.match(c1, /VMTEST-BOOTED hostfs=1.0 boot=active/, 'systemd came up on hostfs 1.0 and mos-boot-setup.service succeeded');
  t.match(first.out, /tools 1\.0/, 'the fs-only target is mounted');
  t.match(first.out, /State:\s+RUNNING/, 'the container target runs under LXC');
  t.match(first.out, /status:\s+verified/, 'the layers are dm-verity devices');
  t.match(first.out, /TAMPER-READ-FAILED: .*Input\/output error/, 'a changed block under a mounted layer reads as EIO');
  t.match(first.out, /verity.*data block \d+ is corrupted/, 'dm-verity names the corrupted block');
  t.match(first.out, /generation 2/, 'the update committed generation 2');
  t.match(c1, /VMTEST-RC=0/, 'the guest script ran to the end');

  const second = await bootWith(t, sys, disk, 'set -x\nmosctl rollback\n', 'second');
  t.match(second.run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 2 `, 'the reboot assembled hostfs 1.1 of generation 2', { diag: explain(second.run, second.out) });
  t.match(second.run.console, /VMTEST-BOOTED hostfs=1.1 boot=active/, 'and systemd runs it');
  t.match(second.out, /rolled back/, 'rollback committed');

  // The old hostfs again: the initrd's line is the proof, so this boot stops at switch_root.
  const third = await bootWith(t, sys, disk, '', 'third', /switch_root uptime|mosctl-boot: FAILED/);
  t.match(third.run.console, new RegExp(`mosctl-boot: mounted hostfs \\(${sys.hostfs['1.0'].digest}\\) of generation 3 `), 'after rollback and a reboot the old hostfs is assembled', { diag: explain(third.run, third.out) });
  for (const [n, r] of [['first', first.run], ['second', second.run], ['third', third.run]] as const) t.comment(`${n} boot: ${(r.durationMs / 1000).toFixed(1)} s`);
});
