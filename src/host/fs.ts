import { open, rename, mkdir, rm, stat, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, basename, join } from 'node:path';
import { MosError, describeSystemError } from '../base/index.js';

/** fsyncs a directory so a rename inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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
    await rm(tmp, { force: true }).catch(() => {});
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot write: ${describeSystemError(e)}`, cause: e });
  }
}

/** mkdir -p that reports failures as HOST_IO. */
export async function ensureDir(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot create directory: ${describeSystemError(e)}`, cause: e });
  }
}

/** True when `path` exists (any type; symlinks not followed). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a file whole, refusing more than `maxBytes` (hostile or mistaken input must not exhaust memory). */
export async function readFileLimited(path: string, maxBytes: number): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new MosError({ code: 'NOT_FOUND', subject: path, message: `cannot read: ${describeSystemError(e)}`, cause: e });
  }
  if (size > maxBytes) {
    throw new MosError({ code: 'INPUT_INVALID', subject: path, message: `file is ${size} bytes, more than the ${maxBytes} allowed` });
  }
  try {
    const buf = await readFile(path);
    if (buf.length > maxBytes) throw new MosError({ code: 'INPUT_INVALID', subject: path, message: `file grew past ${maxBytes} bytes while read` });
    return buf;
  } catch (e) {
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot read: ${describeSystemError(e)}`, cause: e });
  }
}
