// tap starts test files in name order, two at a time: this, the longest VM test, and the other guest
// boots (test/boot/) sort before the host tests, so the long files start first and the many short host
// files fill both jobs at the end (this one also builds the shared VM system, which the others then find
// in the cache or wait for).
// Boot assessment in real boots (QEMU, TCG, QEMU's i6300esb watchdog). One machine disk goes through:
//   1. an update to 1.1 (3 tries) and power cuts (QEMU killed) at each stage of its trial: before the
//      initrd's decrement (nothing counted), right after it (try 1 counted), during the assessment (try 2,
//      state assessing); the boot of try 3: the watchdog armed, systemd, mosctl boot, mosctl assess for
//      the window, good, and a power cut right after the commit: 1.1 is good, its trial record gone;
//   2. an update to 1.2, whose hostfs ships a failing health check (1 try): the check fails, the
//      machine reboots at once; the next boot falls back to 1.1; status and history name the check;
//      updating to 1.2 again is refused as known-bad;
//   3. an update to a hostfs whose init hangs (1 try): the watchdog resets the machine; the next boot
//      falls back;
//   4. an update whose container target crashes within the assessment window (1 try): the machine
//      reboots; the next boot falls back.
// Between boots the disk's config and store partitions are loop-mounted on the host, where the same
// mosctl reads (and for the updates writes) them, and where git fsck checks the config repository.
import { t, type Test } from 'tap';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { needs } from '../support/env.js';
import { runCli } from '../support/cli.js';
import { copyDisk, runVm, VM_PROGRAMS, type VmRun } from '../support/vm.js';
import { vmSystem, WATCHDOG_ARGS, type VmSystem } from '../support/vm-system.js';

const execFileP = promisify(execFile);
const skip = needs({ root: true, programs: [...VM_PROGRAMS, 'git'] });
t.setTimeout(30 * 60_000);

interface Boot {
  readonly run: VmRun;
  readonly n: number;
}

let boots = 0;
async function boot(tt: Test, sys: VmSystem, disk: string, o: { until: RegExp; heartbeat?: number; timeoutMs?: number }): Promise<Boot> {
  const run = await runVm(tt, {
    kernel: sys.kernel.vmlinux,
    initrd: sys.initrd,
    append: `${sys.append.replace('mos.onfail=poweroff', 'mos.onfail=reboot')} i6300esb.heartbeat=${o.heartbeat ?? 600}`,
    disks: [{ file: disk }],
    extraArgs: WATCHDOG_ARGS,
    timeoutMs: o.timeoutMs ?? 400_000,
    until: o.until,
  });
  boots++;
  tt.comment(`boot ${boots}: ${(run.durationMs / 1000).toFixed(1)} s${run.matched ? '' : run.timedOut ? ' (timed out)' : ` (QEMU exited ${run.exitCode}: the guest reset or powered off)`}`);
  return { run, n: boots };
}

const tail = (r: VmRun) => `--- console (${(r.durationMs / 1000).toFixed(1)} s) ---\n${r.console.slice(-8000)}`;

/** The disk's machine-config and machine-store partitions, loop-mounted as a system root on the host. */
async function onDisk<T>(tt: Test, sys: VmSystem, disk: string, f: (root: string) => Promise<T>): Promise<T> {
  const table = JSON.parse((await execFileP('sfdisk', ['-J', disk])).stdout) as { partitiontable: { partitions: { start: number; size: number; name: string }[] } };
  const root = await mkdtemp('/var/tmp/mosctl-vmdisk-');
  const mounted: string[] = [];
  const cleanup = async () => {
    for (const m of mounted.reverse()) await execFileP('umount', [m]).catch(() => execFileP('umount', ['-l', m]));
    mounted.length = 0;
    await rm(root, { recursive: true, force: true });
  };
  tt.teardown(cleanup);
  try {
    for (const [label, dir] of [['machine-config', 'config'], ['machine-store', 'atomfs-store']] as const) {
      const p = table.partitiontable.partitions.find((x) => x.name === label)!;
      await mkdir(join(root, dir), { recursive: true });
      await execFileP('mount', ['-o', `loop,offset=${p.start * 512},sizelimit=${p.size * 512}`, disk, join(root, dir)]);
      mounted.push(join(root, dir));
    }
    await mkdir(join(root, 'factory', 'secure'), { recursive: true });
    await copyFile(sys.ca, join(root, 'factory', 'secure', 'manifestCA.pem'));
    return await f(root);
  } finally {
    await cleanup();
  }
}

const bootState = async (root: string) => JSON.parse(await readFile(join(root, 'config', 'boot-state.json'), 'utf8')) as Record<string, any>;
const events = async (root: string) => (await readFile(join(root, 'config', 'boot-events.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
const fsckClean = async (tt: Test, root: string) => {
  const r = await execFileP('git', ['-C', join(root, 'config', 'manifest.git'), 'fsck', '--strict', '--no-dangling']).then(() => 'clean', (e: Error) => e.message);
  tt.equal(r, 'clean', 'the config repository is git-fsck clean');
};

t.test('health-gated commit and automatic fallback in real boots', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const disk = join(t.testdir({}), 'disk.img');
  await copyDisk(sys.disk, disk);
  const started = Date.now();

  await t.test('a good update: pending, trying, assessing, good; power cuts before and after the decrement, during the assessment and right after the commit', async (t) => {
    await onDisk(t, sys, disk, async (root) => {
      const u = await runCli('mosctl', ['--root', root, 'update', '--tries', '3', sys.releases['1.1']]);
      t.equal(u.code, 0, u.stderr);
      t.match(await bootState(root), { good: { generation: 1 }, trial: { generation: 2, tries: 3, left: 3, state: 'pending' } });
    });
    const before = await boot(t, sys, disk, { until: /mosctl-boot: create-boot-fs/ });
    t.ok(before.run.matched, 'power cut as the initrd starts create-boot-fs');
    await onDisk(t, sys, disk, async (root) => {
      t.match(await bootState(root), { trial: { generation: 2, left: 3, state: 'pending' } }, 'a cut before the decrement counts nothing');
      await fsckClean(t, root);
    });
    const after = await boot(t, sys, disk, { until: /mosctl-boot: generation 2 on trial: try 1 of 3/ });
    t.ok(after.run.matched, 'power cut right after the initrd counted try 1 (before anything is mounted)', { diag: tail(after.run) });
    await onDisk(t, sys, disk, async (root) => {
      const s = await bootState(root);
      t.match(s, { trial: { generation: 2, left: 2, state: 'trying' } }, 'the cut try counts');
      t.equal(s['trial']?.boots?.length, 1, 'and its boot is recorded');
      await fsckClean(t, root);
    });
    const during = await boot(t, sys, disk, { until: /mosctl\[\d+\]: assessing generation 2|mosctl-boot: FAILED|Kernel panic/ });
    t.match(during.run.console, /mosctl-boot: generation 2 on trial: try 2 of 3/, 'try 2', { diag: tail(during.run) });
    t.match(during.run.console, /mosctl\[\d+\]: assessing generation 2/, 'power cut while mosctl assess runs');
    await onDisk(t, sys, disk, async (root) => {
      t.match(await bootState(root), { trial: { generation: 2, left: 1, state: 'assessing' } }, 'a cut during the assessment leaves it assessing, one try left');
      await fsckClean(t, root);
    });
    const good = await boot(t, sys, disk, { until: /generation 2 is good|mosctl-boot: FAILED|Kernel panic/ });
    const c = good.run.console;
    t.match(c, /mosctl-boot: generation 2 on trial: try 3 of 3/, 'the initrd took try 3 of 3 before it mounted', { diag: tail(good.run) });
    t.match(c, /mosctl-boot: watchdog \/dev\/watchdog armed \(600 s\)/, 'and armed the watchdog');
    t.match(c, /mosctl\[\d+\]: assessing generation 2: 5 s window, 1 health checks/, 'mosctl assess ran in the booted host');
    t.match(c, /mosctl\[\d+\]: generation 2 is good/, 'and blessed it; QEMU was killed right after (a power cut after the commit)');
    await onDisk(t, sys, disk, async (root) => {
      const s = await bootState(root);
      t.equal(s['good']?.generation, 2, 'generation 2 is good after the cut');
      t.notOk(s['trial'], 'the tries record is gone');
      t.same((await events(root)).map((e) => `${e['event']}:${e['generation']}`), ['good:1', 'pending:2', 'trying:2', 'trying:2', 'assessing:2', 'trying:2', 'assessing:2', 'good:2']);
      await fsckClean(t, root);
    });
  });

  await t.test('a failing health check: reboot at once, fall back on the next boot, the manifest known-bad', async (t) => {
    await onDisk(t, sys, disk, async (root) => {
      const u = await runCli('mosctl', ['--root', root, 'update', '--tries', '1', sys.releases['1.2']]);
      t.equal(u.code, 0, u.stderr);
    });
    const bad = await boot(t, sys, disk, { until: /mosctl-boot: FAILED|Kernel panic|VMTEST-DONE/ });
    t.notOk(bad.run.matched, 'the boot ended by itself (a reboot: QEMU runs with -no-reboot)', { diag: tail(bad.run) });
    t.match(bad.run.console, /mosctl-boot: generation 3 on trial: try 1 of 1/);
    t.match(bad.run.console, /generation 3: health\.d\/50-demo failed: exited 1: demo service: connection refused on 127\.0\.0\.1:8080; no tries left/, 'assess names the failing check');
    const back = await boot(t, sys, disk, { until: /mosctl-boot: switch_root|mosctl-boot: FAILED/ });
    t.match(back.run.console, /mosctl-boot: generation 3 failed \(health\.d\/50-demo: exited 1: demo service: connection refused on 127\.0\.0\.1:8080\): fell back to generation 2 as generation 4/, 'the next boot fell back', { diag: tail(back.run) });
    t.match(back.run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 4 `, 'to hostfs 1.1');
    await onDisk(t, sys, disk, async (root) => {
      const st = await runCli('mosctl', ['--root', root, 'status']);
      t.match(st.stdout, /boot +generation 4: good/);
      t.match(st.stdout, /failed +install manifest [0-9a-f]{12} as generation 3: health\.d\/50-demo: exited 1: demo service/, 'status names the failing check');
      const h = await runCli('mosctl', ['--root', root, 'history']);
      t.match(h.stdout, /\n3 +[0-9a-f]{12} +\S+ \S+ +failed \(health\.d\/50-demo\) /, 'history: generation 3 failed its health check');
      t.match(h.stdout, /\n4\* +[0-9a-f]{12} +\S+ \S+ +good +Fallback to generation 2: generation 3 failed \(health\.d\/50-demo/, 'generation 4 is the fallback, good');
      const again = await runCli('mosctl', ['--root', root, 'update', sys.releases['1.2']]);
      t.equal(again.code, 8, 'a second update to the same manifest is refused');
      t.match(again.stderr, /failed its boot assessment as generation 3/);
      t.match((await events(root)).map((e) => e['event']).slice(-5), ['pending', 'trying', 'assessing', 'check-failed', 'failed', 'fallback'].slice(-5));
      await fsckClean(t, root);
    });
  });

  await t.test('a hostfs that hangs before userspace: the watchdog resets it, the next boot falls back', async (t) => {
    await onDisk(t, sys, disk, async (root) => {
      const u = await runCli('mosctl', ['--root', root, 'update', '--tries', '1', sys.releases.hang]);
      t.equal(u.code, 0, u.stderr);
    });
    const hang = await boot(t, sys, disk, { until: /mosctl-boot: FAILED|Kernel panic/, heartbeat: 30, timeoutMs: 300_000 });
    t.notOk(hang.run.timedOut, 'the machine did not stay hung', { diag: tail(hang.run) });
    t.match(hang.run.console, /mosctl-boot: watchdog \/dev\/watchdog armed \(30 s\)/);
    t.match(hang.run.console, /VMTEST-HANG/, 'the hanging init ran');
    const back = await boot(t, sys, disk, { until: /mosctl-boot: switch_root|mosctl-boot: FAILED/ });
    t.match(back.run.console, /generation 5 failed \(assessment: not finished in 1 boot \(it hung, crashed or lost power first\)\): fell back to generation 4 as generation 6/, 'back on the good generation', { diag: tail(back.run) });
    await onDisk(t, sys, disk, async (root) => {
      t.equal((await bootState(root))['good']?.generation, 6);
      await fsckClean(t, root);
    });
  });

  await t.test('a container target that crashes within the window: reboot, and the next boot falls back', async (t) => {
    await onDisk(t, sys, disk, async (root) => {
      const u = await runCli('mosctl', ['--root', root, 'update', '--tries', '1', sys.releases.crash]);
      t.equal(u.code, 0, u.stderr);
    });
    const crash = await boot(t, sys, disk, { until: /mosctl-boot: FAILED|Kernel panic|VMTEST-DONE/ });
    t.notOk(crash.run.matched, 'the boot ended by itself (a reboot)', { diag: tail(crash.run) });
    t.match(crash.run.console, /mosctl\[\d+\]: web +ok +started RUNNING/, 'mosctl boot started the container');
    t.match(crash.run.console, /mosctl\[\d+\]: assessing generation 7: 30 s window/);
    t.match(crash.run.console, /generation 7: container web failed: is STOPPED, not RUNNING; no tries left/, 'assess saw the container stop within the window');
    const back = await boot(t, sys, disk, { until: /mosctl-boot: switch_root|mosctl-boot: FAILED/ });
    t.match(back.run.console, /generation 7 failed \(container web: is STOPPED, not RUNNING\): fell back to generation 6 as generation 8/, 'back on the good generation', { diag: tail(back.run) });
    t.match(back.run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 8 `, 'hostfs 1.1 again');
    await onDisk(t, sys, disk, async (root) => {
      const s = await bootState(root);
      t.equal(s['good']?.generation, 8);
      t.match(s['failed'], [{ generation: 3 }, { generation: 5 }, { generation: 7, check: 'container web' }], 'every failed manifest is remembered');
      await fsckClean(t, root);
    });
  });
  t.comment(`${boots} boots in ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
