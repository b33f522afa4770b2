import { t, type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireLock } from '../../src/host/index.js';

// flock(1) from another process is the independent check of what we hold, and the independent holder.
const freeForOthers = (path: string) => spawnSync('flock', ['--nonblock', path, 'true']).status === 0;

/** flock(1) holding `path` in a child (`--no-fork`: the lock is the child's own); killed in teardown. */
async function holdWithFlock(t: Test, path: string) {
  const child = spawn('flock', ['--no-fork', path, 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  for (let i = 0; i < 200 && freeForOthers(path); i++) await sleep(10);
  t.notOk(freeForOthers(path), 'flock(1) holds it');
  return child;
}

t.test('exclusive, idempotent release, and the busy message names the holder', async (t) => {
  const path = join(t.testdir(), 'manifest.lock');
  const lock = await acquireLock(path);
  t.equal(statSync(path).mode & 0o777, 0o600, 'created private');
  t.notOk(freeForOthers(path), 'held');
  await t.rejects(acquireLock(path), { code: 'CONFIG_LOCKED', message: new RegExp(`^locked by pid ${process.pid} \\(`) });
  await t.rejects(acquireLock(path, { busyCode: 'ATOMFS_BUSY' }), { code: 'ATOMFS_BUSY' });
  await lock.release();
  await lock.release(); // idempotent
  t.ok(freeForOthers(path), 'released at once');
});

t.test('a lock held by flock(1) blocks us; killing the holder frees it', async (t) => {
  const path = join(t.testdir(), 'manifest.lock');
  const child = await holdWithFlock(t, path);
  await t.rejects(acquireLock(path), { code: 'CONFIG_LOCKED', message: new RegExp(`^locked by pid ${child.pid} \\(sleep 30\\)$`), hint: /--wait/ });
  await t.rejects(acquireLock(path, { wait: true, timeoutMs: 100 }), { code: 'CONFIG_LOCKED', hint: /until the timeout/ });
  // Waiting does not block the event loop, and ends once SIGKILL frees the lock: no stale locks.
  const waiting = acquireLock(path, { wait: true, timeoutMs: 5000 });
  await sleep(100);
  child.kill('SIGKILL');
  await once(child, 'exit');
  const lock = await waiting;
  t.notOk(freeForOthers(path), 'now ours');
  await lock.release();
});

t.test('waiting in one process: the second acquisition gets it after the first releases', async (t) => {
  const path = join(t.testdir(), 'atomfs.lock');
  const first = await acquireLock(path);
  let got = false;
  const second = acquireLock(path, { wait: true }).then((l) => ((got = true), l));
  await sleep(50);
  t.notOk(got, 'still waiting');
  await first.release();
  await (await second).release();
  t.ok(got);
});

t.test('an abort ends the wait with the signal reason and leaves the lock to its holder', async (t) => {
  const path = join(t.testdir(), 'manifest.lock');
  const held = await acquireLock(path);
  const ac = new AbortController();
  const waiting = acquireLock(path, { wait: true, signal: ac.signal });
  setTimeout(() => ac.abort(new Error('stop')), 50);
  await t.rejects(waiting, { message: 'stop' });
  t.notOk(freeForOthers(path));
  await held.release();
});

t.test('an unusable lock path is HOST_IO naming it', async (t) => {
  const dir = t.testdir({ file: 'x' });
  const path = join(dir, 'file', 'manifest.lock'); // parent is a file: ENOTDIR
  await t.rejects(acquireLock(path), { code: 'HOST_IO', subject: path });
});

t.test('--wait says whom it waits for, once', async (t) => {
  const path = join(t.testdir(), 'manifest.lock');
  const holder = await holdWithFlock(t, path);
  const said: string[] = [];
  const log = { debug() {}, warn() {}, info: (m: string) => void said.push(m) };
  await t.rejects(acquireLock(path, { wait: true, timeoutMs: 300, log }), { code: 'CONFIG_LOCKED' });
  t.equal(said.length, 1, 'one line, not one per poll');
  t.match(said[0], new RegExp(`^waiting for ${path.replace(/[.]/g, '\\.')}, locked by pid ${holder.pid} \\(sleep 30\\)$`));
});
