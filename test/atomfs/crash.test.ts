import { t, type Test } from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { childEnv, plainNode } from '../support/cli.js';
import { atomfsEnv, buildLayer, loopsBelow, mountsBelow, type AtomfsEnv } from '../support/squashfs-fixtures.js';
import { cleanupStale, mountImage, planMount, unmountImage, type MountPlan } from '../../src/atomfs/index.js';

const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup'] });
const child = fileURLToPath(new URL('./kill-child.ts', import.meta.url));

// Runs kill-child.ts on `plan`, waits until it froze before the overlay step, and SIGKILLs it.
async function killBeforeOverlay(t: Test, plan: MountPlan): Promise<void> {
  const proc = spawn(...plainNode(['--import', 'tsx', child, JSON.stringify(plan)]), { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = once(proc, 'exit');
  while (!out.includes('READY') && proc.exitCode === null) await Promise.race([once(proc.stdout, 'data'), exited]);
  t.equal(out, 'READY\n', 'child froze before the overlay');
  proc.kill('SIGKILL');
  const [, signal] = (await exited) as [number | null, string | null];
  t.equal(signal, 'SIGKILL');
}

function leftovers(env: AtomfsEnv) {
  return {
    mounts: mountsBelow(env.root),
    loops: loopsBelow(env.root),
    mountDir: existsSync(join(env.scratch, 'atomfs', 'mounts')),
    writable: readdirSync(env.scratch).filter((n) => n !== 'atomfs'),
  };
}
const clean = { mounts: [], loops: [], mountDir: false, writable: [] };

function layers(env: AtomfsEnv) {
  return [buildLayer(env, { files: { 'a': '1\n' } }), buildLayer(env, { files: { 'b': '2\n' } }), buildLayer(env, { files: { 'a': '3\n' }, verity: false })];
}

t.test('killed between layer mounts and overlay: the next mount and unmount leave nothing', { skip }, async (t) => {
  const env = atomfsEnv(t);
  const dest = join(env.root, 'mnt', 'host');
  const plan = planMount({ target: 'host', layers: layers(env), dest, scratchDir: env.scratch, writable: true });
  await killBeforeOverlay(t, plan);
  t.equal(mountsBelow(join(env.scratch, 'atomfs', 'mounts')).length, 3, 'the killed run left its layer mounts');
  t.notOk(mountsBelow(env.root).includes(dest), 'and no overlay');

  const res = await mountImage(plan);
  t.ok(res.layers.every((l) => l.via === 'shared'), 'the leftover layer mounts are reused');
  t.ok(existsSync(join(dest, 'a')));
  await unmountImage({ dest, scratchDir: env.scratch });
  t.same(leftovers(env), clean);
});

t.test('cleanupStale releases layer mounts, dirs and loop devices of an interrupted run', { skip }, async (t) => {
  const env = atomfsEnv(t);
  const ls = layers(env);
  const keepDest = join(env.root, 'mnt', 'keep');
  await mountImage(planMount({ target: 'keep', layers: [ls[0]!], dest: keepDest, scratchDir: env.scratch, writable: false }));
  const dest = join(env.root, 'mnt', 'dead');
  await killBeforeOverlay(t, planMount({ target: 'dead', layers: ls, dest, scratchDir: env.scratch, writable: true }));
  // An interrupted mount(8) can leave a bound loop device with no mount on it.
  const loop = execFileSync('losetup', ['--find', '--show', '--read-only', ls[1]!.path], { encoding: 'utf8' }).trim();
  t.teardown(() => {
    if (loopsBelow(env.root).includes(loop)) execFileSync('losetup', ['-d', loop]);
  });

  const res = await cleanupStale({ scratchDir: env.scratch });
  t.equal(res.releasedLayers.length, 2, 'the two layers only the dead run used');
  t.same(res.detachedLoops, [loop]);
  t.same(res.removedDirs.map((d) => d.slice(env.scratch.length)).sort(), ['/dead', '/dead/upper', '/dead/work']);
  t.same(mountsBelow(env.root).sort(), [join(env.scratch, 'atomfs', 'mounts', ls[0]!.digest.slice(7)), keepDest].sort(), 'the live root is untouched');
  t.same((await cleanupStale({ scratchDir: env.scratch })).releasedLayers, [], 'idempotent');

  await unmountImage({ dest: keepDest, scratchDir: env.scratch });
  t.same(leftovers(env), clean);
});
