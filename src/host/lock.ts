import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { open, readFile, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { MosError, describeSystemError } from '../base/index.js';

/** A held exclusive lock; release is idempotent. `await using` releases it. */
export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface LockOptions {
  /** Block until the lock is free instead of failing at once. */
  readonly wait?: boolean;
  /** With `wait`, give up after this many ms (default: forever). */
  readonly timeoutMs?: number;
  /** Error code when busy; default CONFIG_LOCKED. */
  readonly busyCode?: 'CONFIG_LOCKED' | 'ATOMFS_BUSY';
  /**
   * Keep holding the flock this many ms after release, so the next acquire of the same path in this
   * process reuses it instead of spawning a holder again (many short critical sections in a row, e.g.
   * mounting ten targets). Holding a lock a little longer is always safe; exiting still releases it.
   */
  readonly lingerMs?: number;
}

interface Lingering {
  readonly child: ChildProcessWithoutNullStreams;
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

// Idle holders kept by `lingerMs`, by lock path (this process only).
const lingering = new Map<string, Lingering>();

const CONFLICT_EXIT = 75;

/**
 * Takes an exclusive flock(2) on `path` (created if missing), the same kind of lock Go mos takes on
 * config/manifest.lock. Node has no flock, so a tiny `flock FILE cat` child holds it: the lock lives as
 * long as the child, and the child lives as long as our end of its stdin pipe, so a crash or SIGKILL of
 * this process releases the lock without any stale-lock guessing. Busy: CONFIG_LOCKED naming the holder.
 */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<FileLock> {
  const idle = lingering.get(path);
  if (idle && !idle.busy && idle.child.exitCode === null) {
    clearTimeout(idle.timer);
    idle.busy = true;
    return holderHandle(path, idle.child, opts);
  }
  try {
    const fh = await open(path, 'a', 0o600); // flock(1) would create it 0644; keep it private and not truncated
    await fh.close();
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot open lock file: ${describeSystemError(e)}`, cause: e });
  }
  const args = ['--exclusive', '--conflict-exit-code', String(CONFLICT_EXIT)];
  if (!opts.wait) args.push('--nonblock');
  else if (opts.timeoutMs !== undefined) args.push('--timeout', String(Math.max(opts.timeoutMs / 1000, 0.001)));
  args.push(path, 'cat');
  const child = spawn('flock', args, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
  child.stdin.on('error', () => {});
  const acquired = await handshake(child);
  if (!acquired) {
    const code = child.exitCode;
    if (code === CONFLICT_EXIT) {
      const holder = await lockHolder(path);
      throw new MosError({
        code: opts.busyCode ?? 'CONFIG_LOCKED',
        subject: path,
        message: holder ? `locked by pid ${holder.pid} (${holder.cmdline})` : 'locked by another process',
        hint: opts.wait ? 'the lock stayed busy until the timeout' : 'wait for it to finish, or pass --wait',
      });
    }
    throw new MosError({ code: 'HOST_EXEC_FAILED', subject: path, message: `flock failed (exit ${String(code)})` });
  }
  if (opts.lingerMs !== undefined && !lingering.has(path)) {
    // An idle holder must not keep the process alive: at exit its pipe closes and the lock goes.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    lingering.set(path, { child, busy: true, timer: undefined });
    child.once('exit', () => lingering.delete(path));
  }
  return holderHandle(path, child, opts);
}

function holderHandle(path: string, child: ChildProcessWithoutNullStreams, opts: LockOptions): FileLock {
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    const entry = lingering.get(path);
    if (entry?.child === child && opts.lingerMs !== undefined) {
      entry.busy = false;
      entry.timer = setTimeout(() => {
        lingering.delete(path);
        child.stdin.end();
      }, opts.lingerMs);
      entry.timer.unref();
      return;
    }
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  };
  return { path, release, [Symbol.asyncDispose]: release };
}

// Writes a byte to `cat` and waits for the echo: cat only runs once flock holds the lock.
async function handshake(child: ChildProcessWithoutNullStreams): Promise<boolean> {
  return new Promise((resolve) => {
    const onData = () => done(true);
    const onExit = () => done(false);
    const done = (ok: boolean) => {
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      resolve(ok);
    };
    child.stdout.once('data', onData);
    child.once('exit', onExit);
    child.once('error', onExit);
    child.stdin.write('\n');
  });
}

/** Who holds a flock on `path`: the holding process (flock's parent when it is our helper). */
export async function lockHolder(path: string): Promise<{ pid: number; cmdline: string } | undefined> {
  let ino: number;
  try {
    ino = (await stat(path)).ino;
  } catch {
    return undefined;
  }
  let locks: string;
  try {
    locks = await readFile('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of locks.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (blocked waiters have a "->" marker)
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'FLOCK' || f.includes('->')) continue;
    const [, , , , pidS, devIno] = f;
    const fileIno = devIno?.split(':')[2];
    if (fileIno === undefined || Number(fileIno) !== ino) continue;
    let pid = Number(pidS);
    const comm = await readProc(pid, 'comm');
    if (comm?.trim() === 'flock' || comm?.trim() === 'cat') {
      const ppid = await parentPid(pid);
      if (ppid !== undefined && ppid > 1) pid = ppid;
    }
    const cmd = (await readProc(pid, 'cmdline'))?.split('\0').filter(Boolean).join(' ') ?? '?';
    return { pid, cmdline: cmd.length > 200 ? cmd.slice(0, 200) + '…' : cmd };
  }
  return undefined;
}

async function readProc(pid: number, file: string): Promise<string | undefined> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

async function parentPid(pid: number): Promise<number | undefined> {
  const s = await readProc(pid, 'stat');
  if (s === undefined) return undefined;
  const after = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(after[1]);
  return Number.isFinite(ppid) ? ppid : undefined;
}
