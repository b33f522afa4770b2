import { constants } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as FsExt from 'fs-ext';
import { MosError, describeSystemError, type Logger } from '../base/index.js';

/** A held exclusive lock; release is idempotent. `await using` releases it. */
export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface LockOptions {
  /** Wait until the lock is free instead of failing at once. */
  readonly wait?: boolean;
  /** With `wait`, give up after this many ms (default: forever). */
  readonly timeoutMs?: number;
  /** Error code when busy; default CONFIG_LOCKED. */
  readonly busyCode?: 'CONFIG_LOCKED' | 'ATOMFS_BUSY';
  /** Stops waiting; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** With `wait`: told once, at info level, whom the lock waits for (default silent). */
  readonly log?: Logger;
}

// Waiting polls a non-blocking flock: a blocking one would hold a threadpool thread (shared with all
// file I/O) that nothing can interrupt, so neither a timeout nor an abort could end it.
const FIRST_POLL_MS = 2;
const MAX_POLL_MS = 50;

let fsExt: typeof FsExt | undefined;

// Loaded on first use so `--help` and `--version` do not load a native addon.
function flockSync(fd: number, flags: 'exnb'): void {
  fsExt ??= createRequire(import.meta.url)('fs-ext') as typeof FsExt;
  fsExt.flockSync(fd, flags);
}

/**
 * Takes an exclusive flock(2) on `path` (created 0600 if missing), the same lock Go mos and flock(1)
 * take on config/manifest.lock. The lock belongs to an open file description of this process: closing
 * it (release, exit, crash, SIGKILL) frees the lock, so there are no stale locks; children spawned later
 * do not inherit it (Node opens with O_CLOEXEC). Two acquisitions in one process exclude each other too.
 * Busy: `busyCode` (CONFIG_LOCKED) naming the holder's pid and command line.
 */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<FileLock> {
  opts.signal?.throwIfAborted();
  let fh: FileHandle;
  try {
    // Read-only is enough for flock; O_CREAT without O_TRUNC never clobbers a lock file.
    fh = await open(path, constants.O_RDONLY | constants.O_CREAT, 0o600);
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot open lock file: ${describeSystemError(e)}`, cause: e });
  }
  try {
    await lockOrWait(fh, path, opts);
  } catch (e) {
    await fh.close().catch(() => {}); // the lock error is the one to report; closing a read-only fd loses nothing
    throw e;
  }
  let released: Promise<void> | undefined;
  const release = () => (released ??= closeLock(fh, path));
  return { path, release, [Symbol.asyncDispose]: release };
}

async function lockOrWait(fh: FileHandle, path: string, opts: LockOptions): Promise<void> {
  const deadline = opts.wait && opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
  for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
    if (tryLock(fh, path)) return;
    const left = deadline - Date.now();
    if (!opts.wait || left <= 0) throw await busyError(path, opts);
    if (delay === FIRST_POLL_MS && opts.log) opts.log.info(`waiting for ${path}, locked by ${await describeHolder(path)}`);
    await sleep(Math.min(delay, left), undefined, opts.signal ? { signal: opts.signal } : {}).catch((e: unknown) => {
      throw opts.signal?.aborted ? opts.signal.reason : e;
    });
  }
}

/**
 * Takes an exclusive flock(2) on an open file without waiting: true when taken (held until the handle
 * is closed), false when another open file description holds it. For files locked while written.
 */
export function tryFlock(fh: FileHandle, path: string): boolean {
  return tryLock(fh, path);
}

// True when taken, false when another open file description holds it.
function tryLock(fh: FileHandle, path: string): boolean {
  try {
    flockSync(fh.fd, 'exnb');
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_DLOPEN_FAILED') {
      throw new MosError({ code: 'HOST_TOOL_MISSING', subject: 'fs-ext', message: `cannot load the flock(2) binding: ${(e as Error).message}`, hint: 'reinstall mosctl (npm ci builds fs-ext)', cause: e });
    }
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot lock: ${describeSystemError(e)}`, cause: e });
  }
}

// `pid N (command line)` of the holder, for messages.
async function describeHolder(path: string): Promise<string> {
  const holder = await lockHolder(path);
  return holder ? `pid ${holder.pid} (${holder.cmdline})` : 'another process';
}

async function busyError(path: string, opts: LockOptions): Promise<MosError> {
  return new MosError({
    code: opts.busyCode ?? 'CONFIG_LOCKED',
    subject: path,
    message: `locked by ${await describeHolder(path)}`,
    hint: opts.wait ? 'the lock stayed busy until the timeout' : 'wait for it to finish, or pass --wait',
  });
}

async function closeLock(fh: FileHandle, path: string): Promise<void> {
  try {
    await fh.close(); // the last close of the description drops the flock
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot release lock: ${describeSystemError(e)}`, cause: e });
  }
}

/**
 * Who holds a flock on `path`, from /proc/locks; undefined when nobody does, or when the file or
 * /proc/locks cannot be read (the caller is already reporting a busy lock; the name is a courtesy).
 */
export async function lockHolder(path: string): Promise<{ pid: number; cmdline: string } | undefined> {
  let ino: number;
  let locks: string;
  try {
    ino = (await stat(path)).ino;
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
    const pid = Number(pidS);
    const cmd = (await readProc(pid, 'cmdline'))?.split('\0').filter(Boolean).join(' ') || '?';
    return { pid, cmdline: cmd.length > 200 ? cmd.slice(0, 200) + '…' : cmd };
  }
  return undefined;
}

// A process that exited meanwhile has no /proc entry: then its command line is unknown, not an error.
async function readProc(pid: number, file: string): Promise<string | undefined> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}
