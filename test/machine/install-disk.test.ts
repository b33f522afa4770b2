// The rules of `mosctl install --partition` that need no disk: which disk is chosen (from a sysfs tree
// laid out as the kernel does), how a disk is divided, and that the sfdisk script is what real sfdisk
// writes as mos's GPT layout. The whole install onto a real disk runs in the VM (test/boot/cd-install).
import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chooseDisk, listDisks, planLayout, PARTITION_TYPES } from '../../src/machine/index.js';
import { sfdiskScript } from '../../src/machine/install-disk.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';

/** A /sys/class/block-shaped tree: disks with size (sectors), ro, removable and named partitions. */
function sysfs(dir: string, disks: Record<string, { mib: number; ro?: boolean; parts?: string[] }>): string {
  const root = join(dir, 'block');
  for (const [name, d] of Object.entries(disks)) {
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, 'size'), `${d.mib * 2048}\n`);
    writeFileSync(join(root, name, 'ro'), d.ro ? '1\n' : '0\n');
    writeFileSync(join(root, name, 'removable'), '0\n');
    (d.parts ?? []).forEach((p, i) => {
      const pn = `${name}${/\d$/.test(name) ? 'p' : ''}${i + 1}`;
      mkdirSync(join(root, name, pn), { recursive: true });
      writeFileSync(join(root, name, pn, 'partition'), `${i + 1}\n`);
      writeFileSync(join(root, name, pn, 'uevent'), `MAJOR=253\nMINOR=${i + 1}\nDEVNAME=${pn}\nDEVTYPE=partition\nPARTN=${i + 1}\n${p ? `PARTNAME=${p}\n` : ''}`);
      mkdirSync(join(root, pn), { recursive: true });
      writeFileSync(join(root, pn, 'partition'), `${i + 1}\n`);
    });
  }
  return root;
}

const OURS = ['esp', 'machine-config', 'machine-store', 'machine-scratch'];

t.test('disk choice', async (t) => {
  const dir = t.testdir({});
  const sb = sysfs(dir, { loop0: { mib: 100 }, xvdq: { mib: 4096 }, sr7: { mib: 600, ro: true }, 'dm-0': { mib: 10 } });
  const disks = await listDisks(sb);
  t.same(disks.map((d) => d.name), ['sr7', 'xvdq'], 'loop and dm devices are not disks; partitions are not listed as disks');
  t.equal((await chooseDisk({ sysBlock: sb })).disk.device, '/dev/xvdq', 'the only writable disk is chosen');

  const two = sysfs(join(dir, 'two'), { xvdq: { mib: 4096 }, xvdr: { mib: 8192 } });
  await t.rejects(chooseDisk({ sysBlock: two }), { code: 'INPUT_INVALID', message: /several disks could be installed onto: \/dev\/xvdq \(4096 MiB\), \/dev\/xvdr \(8192 MiB\)/ }, 'two candidates: asks for --disk');
  t.equal((await chooseDisk({ sysBlock: two, disk: '/dev/xvdr' })).disk.device, '/dev/xvdr', '--disk chooses');
  await t.rejects(chooseDisk({ sysBlock: two, disk: '/dev/xvdz' }), { code: 'NOT_FOUND', hint: /disks: \/dev\/xvdq, \/dev\/xvdr/ }, 'an unknown --disk lists the disks');
  await t.rejects(chooseDisk({ sysBlock: sb, disk: 'sr7' }), { code: 'INPUT_INVALID', subject: 'disk /dev/sr7', message: /is read-only/ }, 'a read-only disk is refused');

  const used = sysfs(join(dir, 'used'), { xvdq: { mib: 4096, parts: ['root', 'home'] }, nvme9n9: { mib: 4096, parts: OURS } });
  await t.rejects(chooseDisk({ sysBlock: used, disk: 'xvdq' }), { code: 'INPUT_INVALID', message: /has partitions \(root, home\)/, hint: /--wipe/ }, 'a disk with foreign partitions needs --wipe');
  t.equal((await chooseDisk({ sysBlock: used, disk: 'xvdq', wipe: true })).reused, false, 'with --wipe it is taken');
  const again = await chooseDisk({ sysBlock: used, disk: 'nvme9n9' });
  t.equal(again.reused, true, "mosctl's own layout (a previous attempt) is reused without --wipe");
  t.same(again.disk.partitions.map((p) => p.device), ['/dev/nvme9n9p1', '/dev/nvme9n9p2', '/dev/nvme9n9p3', '/dev/nvme9n9p4'], 'nvme partition names');
});

t.test('layout sizes and the too-small refusal', async (t) => {
  const l = planLayout('/dev/xvdq', 3 * 1024 ** 3, 300 * 1024 ** 2);
  t.same(l.map((p) => p.name), OURS, "mos's order");
  t.equal(l.reduce((n, p) => n + p.sizeMiB, 0), 3072 - 2, 'the whole disk but the GPT areas');
  t.equal(l.find((p) => p.name === 'machine-scratch')!.sizeMiB, 307, 'scratch is a tenth');
  t.throws(() => planLayout('/dev/xvdr', 200 * 1024 ** 2, 300 * 1024 ** 2), { code: 'INPUT_INVALID', subject: 'disk /dev/xvdr', message: /is too small: 200 MiB, the release needs at least 889 MiB \(esp 128, machine-config 64, machine-store 439, machine-scratch 256\)/ });
});

t.test('real sfdisk writes the script as mos\'s GPT layout', { skip: needs({ programs: ['sfdisk', 'truncate'] }) }, async (t) => {
  const dir = t.testdir({});
  const img = join(dir, 'd.img');
  execFileSync('truncate', ['-s', '1G', img]);
  execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', img], { input: sfdiskScript(planLayout(img, 1024 ** 3, 100 * 1024 ** 2)) });
  const dump = JSON.parse(execFileSync('sfdisk', ['--json', img], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: { name: string; type: string; start: number }[] } };
  t.equal(dump.partitiontable.label, 'gpt');
  t.same(dump.partitiontable.partitions.map((p) => p.name), OURS, 'names');
  t.same(dump.partitiontable.partitions.map((p) => p.type.toUpperCase()), OURS.map((n) => PARTITION_TYPES[n as keyof typeof PARTITION_TYPES]), 'type GUIDs');
  t.ok(dump.partitiontable.partitions.every((p) => p.start % 2048 === 0), '1 MiB aligned');
});

t.test('install flags that only go with --partition', async (t) => {
  for (const args of [['--disk', '/dev/xvdq'], ['--wipe'], ['--uki', '/x.efi']]) {
    const r = await runCli('mosctl', ['--root', t.testdirName, 'install', ...args, 'oci:/nowhere:1']);
    t.equal(r.code, 2, `${args[0]} without --partition is a usage error`);
    t.match(r.stderr, new RegExp(`${args[0]}: only goes with --partition`));
  }
  const dry = await runCli('mosctl', ['--root', t.testdirName, 'install', '--partition', '--dry-run', 'oci:/nowhere:1']);
  t.equal(dry.code, 2);
  t.match(dry.stderr, /--dry-run: does not go with --partition/);
});
