import { t } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireLock } from '../../src/host/index.js';

// flock(1) from another process is the independent check of what we hold.
const freeForOthers = (path: string) => spawnSync('flock', ['--nonblock', path, 'true']).status === 0;

t.test('exclusive, crash-safe, and the busy message names the holder', async (t) => {
  const path = join(t.testdir(), 'manifest.lock');
  const lock = await acquireLock(path);
  t.notOk(freeForOthers(path), 'held');
  await t.rejects(acquireLock(path), { code: 'CONFIG_LOCKED', message: new RegExp(`^locked by pid ${process.pid} `) });
  await lock.release();
  await lock.release(); // idempotent
  t.ok(freeForOthers(path), 'released');

  // A holder killed with SIGKILL releases the lock: no stale-lock guessing.
  const child = spawn('flock', ['--no-fork', path, 'sleep', '30']);
  t.teardown(() => void child.kill('SIGKILL'));
  await sleep(200);
  t.notOk(freeForOthers(path));
  child.kill('SIGKILL');
  await once(child, 'exit');
  const again = await acquireLock(path, { wait: true, timeoutMs: 2000 });
  await again.release();
});

t.test('lingerMs: reused within this process, released to others once it lapses', async (t) => {
  const path = join(t.testdir(), 'atomfs.lock');
  const a = await acquireLock(path, { lingerMs: 150 });
  await a.release();
  t.notOk(freeForOthers(path), 'still held while lingering');
  const b = await acquireLock(path, { lingerMs: 150 });
  await b.release();
  await sleep(400);
  t.ok(freeForOthers(path), 'released after the linger');
});
