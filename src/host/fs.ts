import { constants as fsConstants, type Stats } from 'node:fs';
import { lstat, open, readlink, realpath, rename, mkdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, basename, join } from 'node:path';
import { MosError, describeSystemError } from '../base/index.js';

/**
 * Wraps a failed file system call on `path` as the MosError it means: ENOENT or ENOTDIR (nothing there)
 * is `missing` (default NOT_FOUND), EACCES or EPERM is HOST_PERMISSION, anything else HOST_IO. The
 * message is `<action>: <reason>`; the errno error stays the cause.
 */
export function fileError(e: unknown, path: string, action: string, missing: 'NOT_FOUND' | 'HOST_IO' = 'NOT_FOUND'): MosError {
  if (e instanceof MosError) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const message = `${action}: ${describeSystemError(e)}`;
  if (errno === 'ENOENT' || errno === 'ENOTDIR') return new MosError({ code: missing, subject: path, message, cause: e });
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new MosError({ code: 'HOST_PERMISSION', subject: path, message, hint: 'check the owner and mode of the file and its directories, or run as root', cause: e });
  }
  return new MosError({ code: 'HOST_IO', subject: path, message, cause: e });
}

/** fsyncs a directory so a rename inside it survives a crash; failures are MosErrors naming `dir`. */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw fileError(e, dir, 'cannot sync directory', 'HOST_IO');
  }
}

/** A temp file name beside `path` (same filesystem, so rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory. A crash leaves
 * either the old content or the new one, never a mix (a stray temp file at most).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {}); // best effort: the write error is the one to report
    throw fileError(e, path, 'cannot write', 'HOST_IO');
  }
}

/** mkdir -p; failures are HOST_PERMISSION or HOST_IO naming `path`. */
export async function ensureDir(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  } catch (e) {
    throw fileError(e, path, 'cannot create directory', 'HOST_IO');
  }
}

/**
 * stat(2) of `path`, or undefined when nothing is there (ENOENT, ENOTDIR). A path that cannot be
 * checked throws HOST_PERMISSION or HOST_IO: unreadable is not absent.
 */
export async function statOrAbsent(path: string): Promise<Stats | undefined> {
  return absentAsUndefined(stat(path), path);
}

/** {@link statOrAbsent} without following a final symlink (lstat(2)). */
export async function lstatOrAbsent(path: string): Promise<Stats | undefined> {
  return absentAsUndefined(lstat(path), path);
}

/** True when `path` exists (any type; symlinks followed, so a dangling one is absent); throws as {@link statOrAbsent}. */
export async function exists(path: string): Promise<boolean> {
  return (await statOrAbsent(path)) !== undefined;
}

async function absentAsUndefined(call: Promise<Stats>, path: string): Promise<Stats | undefined> {
  try {
    return await call;
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return undefined;
    throw fileError(e, path, 'cannot check');
  }
}

/** How `openRegular` and `readFileLimited` open a file. */
export interface OpenRegularOptions {
  /** Refuse a symbolic link as the last component (store blobs must be files inside their layout). */
  readonly noFollow?: boolean;
}

/**
 * Opens `path` for reading and checks, on the open file, that it is a regular file: a FIFO is opened
 * without waiting for a writer, then refused like a device or a socket (INPUT_INVALID naming the kind).
 * The caller closes the handle.
 */
export async function openRegular(path: string, opts: OpenRegularOptions = {}): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY | (opts.noFollow ? fsConstants.O_NOFOLLOW : 0));
  } catch (e) {
    if (opts.noFollow && (e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new MosError({ code: 'INPUT_INVALID', subject: path, message: 'is a symbolic link, not a regular file', hint: 'blobs must be regular files inside their layout', cause: e });
    }
    throw fileError(e, path, 'cannot read');
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new MosError({ code: 'HOST_IO', subject: path, message: 'cannot read: is a directory' });
    // /dev/zero, a FIFO or a socket never end (or never start): only regular files are input.
    if (!st.isFile()) throw new MosError({ code: 'INPUT_INVALID', subject: path, message: `is not a regular file (${fileKind(st)})`, hint: 'give the path of a regular file' });
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {}); // the refusal above is the error worth reporting
    throw e;
  }
}

/**
 * Reads a file whole, refusing more than `maxBytes` (hostile or mistaken input must not exhaust memory).
 * Missing is NOT_FOUND, unreadable HOST_PERMISSION, too large INPUT_INVALID, other failures HOST_IO.
 */
export async function readFileLimited(path: string, maxBytes: number, opts: OpenRegularOptions = {}): Promise<Buffer> {
  const { fh, size } = await openRegular(path, opts);
  try {
    if (size > maxBytes) {
      throw new MosError({ code: 'INPUT_INVALID', subject: path, message: `file is ${size} bytes, more than the ${maxBytes} allowed` });
    }
    // Read to EOF, not to the size seen: a file that grows meanwhile is caught at the first excess byte.
    let buf = Buffer.alloc(Math.min(size, maxBytes) + 1);
    let len = 0;
    for (;;) {
      if (len === buf.length) {
        const bigger = Buffer.alloc(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
      if (bytesRead === 0) return buf.subarray(0, len);
      len += bytesRead;
      if (len > maxBytes) throw new MosError({ code: 'INPUT_INVALID', subject: path, message: `file grew past ${maxBytes} bytes while read` });
    }
  } catch (e) {
    throw fileError(e, path, 'cannot read', 'HOST_IO');
  } finally {
    await fh.close().catch((e: unknown) => {
      throw fileError(e, path, 'cannot close', 'HOST_IO');
    });
  }
}

/** What kind of non-regular file `st` describes, for messages. */
function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * Refuses a path under `root` that leaves it through a symlink: each of `rels` (relative to `root`)
 * is walked component by component, and a component that is a symlink must resolve to a place inside
 * `root` (a dangling one is refused too). Missing components are fine: mosctl creates them as real
 * directories. Returns nothing; throws INPUT_INVALID naming the symlink and where it leads. Node has
 * no openat2(RESOLVE_BENEATH): this check runs before an operation touches the paths, and a root an
 * attacker can rewrite while mosctl runs is one they already own.
 */
export async function refuseOutwardSymlinks(root: string, rels: readonly string[]): Promise<void> {
  let base: string;
  try {
    base = await realpath(root);
  } catch (e) {
    throw fileError(e, root, 'system root');
  }
  const inside = (p: string) => p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
  for (const rel of rels) {
    let cur = base;
    for (const part of rel.split('/').filter((c) => c !== '' && c !== '.')) {
      const next = join(cur, part);
      const st = await lstatOrAbsent(next);
      if (st === undefined) break;
      if (!st.isSymbolicLink()) {
        cur = next;
        continue;
      }
      let target: string;
      try {
        target = await realpath(next);
      } catch {
        throw new MosError({ code: 'INPUT_INVALID', subject: join(root, rel), message: `${next} is a symlink to a missing path (${await readlink(next).catch(() => '?')})`, hint: 'remove it: mosctl creates this directory itself' });
      }
      if (!inside(target)) {
        throw new MosError({ code: 'INPUT_INVALID', subject: join(root, rel), message: `${next} is a symlink to ${target}, outside the system root ${base}`, hint: 'every path mosctl writes or mounts must stay under --root: replace the symlink with a directory (or a bind mount)' });
      }
      cur = target;
    }
  }
}
