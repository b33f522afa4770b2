import { constants } from 'node:fs';
import { open, rename, rm, readdir, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MosError, describeSystemError, isDigest, isMosError, splitDigest, type Digest, type Logger } from '../../base/index.js';
import { ensureDir, fsyncDir, lstatOrAbsent, processAlive, statOrAbsent, tryFlock } from '../../host/index.js';
import { BlobVerifier } from '../verify.js';
import type { BlobContent, Descriptor } from '../types.js';

// Blob files of a layout: `blobs/<alg>/<hex>` (0444), written through `ingest/` so that no partial or
// unverified content ever carries a digest name (oras-go content/oci/storage.go does the same).

/** Directory holding in-flight blob writes; skopeo and umoci ignore it. */
export const INGEST_DIR = 'ingest';

/** Path of a blob in the layout at `dir`. */
export function blobPath(dir: string, digest: Digest): string {
  const { algorithm, hex } = splitDigest(digest);
  return join(dir, 'blobs', algorithm, hex);
}

/**
 * The name of a resumable download in `ingest/`: the digest it must hash to. Its writer holds a flock
 * on it, so a file nobody has locked is a killed writer's, to be resumed (never trusted: re-hashed).
 */
export function partialName(digest: Digest): string {
  const { algorithm, hex } = splitDigest(digest);
  return `${algorithm}-${hex}.partial`;
}

/** A temp name that records its writer's pid, so cleanup can tell a crashed write from a running one. */
function ingestName(digest: Digest): string {
  return `${splitDigest(digest).hex.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Options of {@link writeBlob}. */
export interface WriteBlobOptions {
  readonly signal?: AbortSignal | undefined;
  readonly log?: Logger | undefined;
}

/**
 * Stores `content` in the layout as `desc`: a temp file in `ingest/`, size and digest checked while it
 * is written, fsync, chmod 0444, rename to its digest name, fsync of the blob directory. On any failure
 * the temp file is removed and nothing is stored. Given a function of the offset, the temp file is named
 * by the digest and locked while written, so a download a killed process left is resumed (see
 * {@link partialName}). Returns the number of bytes written.
 */
export async function writeBlob(dir: string, desc: Descriptor, content: BlobContent, opts: WriteBlobOptions = {}): Promise<number> {
  const final = blobPath(dir, desc.digest);
  await ensureDir(join(dir, INGEST_DIR));
  await ensureDir(join(final, '..'));
  if (typeof content !== 'function') return writeOnce(dir, desc, content, opts.signal);
  const partial = await openPartial(dir, desc.digest);
  // Another process is downloading this very blob: download it apart; whichever renames first wins.
  if (!partial) return writeOnce(dir, desc, content(0), opts.signal);
  return writeResumable(partial, desc, final, content, opts);
}

async function writeOnce(dir: string, desc: Descriptor, content: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<number> {
  const final = blobPath(dir, desc.digest);
  const tmp = join(dir, INGEST_DIR, ingestName(desc.digest));
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      // Every byte is hashed here, whatever the source claims: the digest name is this store's promise.
      const v = new BlobVerifier(desc, final);
      await appendChecked(fh, 0, content, v, signal);
      v.finish();
      await fh.sync();
      await fh.chmod(0o444);
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    await fsyncDir(join(final, '..'));
    return desc.size;
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw storeError(e, final);
  }
}

/**
 * The download file of `digest` (`ingest/<alg>-<hex>.partial`), opened and flock-ed; undefined when
 * another process holds it. A file swapped or removed between the open and the lock is opened again.
 */
async function openPartial(dir: string, digest: Digest): Promise<{ readonly fh: FileHandle; readonly path: string } | undefined> {
  const path = join(dir, INGEST_DIR, partialName(digest));
  for (let attempt = 0; ; attempt++) {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw storeError(e, path);
    }
    try {
      if (!tryFlock(fh, path)) {
        await fh.close();
        return undefined;
      }
      const [held, named] = await Promise.all([fh.stat(), statOrAbsent(path)]);
      if (!held.isFile()) throw new MosError({ code: 'HOST_IO', subject: path, message: 'is not a regular file' });
      if (named?.ino === held.ino) return { fh, path };
      // The previous holder renamed or removed it after we opened it: start over on the new name.
      await fh.close();
      if (attempt >= 3) return undefined;
    } catch (e) {
      await fh.close().catch(() => {});
      throw storeError(e, path);
    }
  }
}

async function writeResumable(
  partial: { readonly fh: FileHandle; readonly path: string },
  desc: Descriptor,
  final: string,
  from: (offset: number) => AsyncIterable<Uint8Array>,
  opts: WriteBlobOptions,
): Promise<number> {
  const { fh, path } = partial;
  let renamed = false;
  try {
    let offset = (await fh.stat()).size;
    let written = 0;
    for (let attempt = 0; ; attempt++) {
      if (offset > desc.size) offset = 0;
      if (offset === 0) await fh.truncate(0);
      const v = new BlobVerifier(desc, final);
      // Re-hash what is already on disk: it was written by a process that is gone and never verified.
      if (offset > 0) {
        await hashPrefix(fh, offset, v, opts.signal);
        opts.log?.info(`resuming the download of ${desc.digest} at byte ${offset} of ${desc.size}`);
      }
      // A complete file a killed process did not get to rename needs no request (a Range at its end is a 416).
      if (offset < desc.size) written += await appendChecked(fh, offset, from(offset), v, opts.signal);
      try {
        v.finish();
        break;
      } catch (e) {
        // The part on disk may be what is wrong (a crash mid-write): once, fetch the whole blob again.
        if (offset === 0 || attempt > 0 || !isMosError(e, 'OCI_DIGEST_MISMATCH')) throw e;
        opts.log?.warn(`the resumed download of ${desc.digest} does not verify; downloading it again from the start`);
        offset = 0;
      }
    }
    await fh.sync();
    await fh.chmod(0o444);
    await rename(path, final);
    renamed = true;
    await fsyncDir(join(final, '..'));
    return written;
  } catch (e) {
    // A clean failure leaves nothing; only a killed process leaves its partial file for the next run.
    if (!renamed) await rm(path, { force: true }).catch(() => {});
    throw storeError(e, final);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Feeds the first `length` bytes of the file to `v`. */
async function hashPrefix(fh: FileHandle, length: number, v: BlobVerifier, signal: AbortSignal | undefined): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(length, WRITE_BATCH));
  for (let pos = 0; pos < length; ) {
    signal?.throwIfAborted();
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.byteLength, length - pos), pos);
    if (bytesRead === 0) throw new MosError({ code: 'HOST_IO', subject: 'ingest', message: `partial file ended at byte ${pos} of ${length}` });
    v.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/** Writes `content` at `position` on, each chunk checked by `v` before it is written; returns the bytes written. */
async function appendChecked(fh: FileHandle, position: number, content: AsyncIterable<Uint8Array>, v: BlobVerifier, signal: AbortSignal | undefined): Promise<number> {
  // Network chunks are small (16-64 KiB): gather them and write with one writev per WRITE_BATCH.
  let batch: Uint8Array[] = [];
  let batched = 0;
  let pos = position;
  for await (const chunk of content) {
    signal?.throwIfAborted();
    v.update(chunk);
    batch.push(chunk);
    batched += chunk.byteLength;
    if (batched >= WRITE_BATCH) {
      await writeAll(fh, batch, batched, pos);
      pos += batched;
      batch = [];
      batched = 0;
    }
  }
  if (batched > 0) await writeAll(fh, batch, batched, pos);
  return pos + batched - position;
}

function storeError(e: unknown, subject: string): unknown {
  if (e instanceof MosError || (e as Error).name === 'AbortError') return e;
  return new MosError({ code: 'HOST_IO', subject, message: `cannot store blob: ${describeSystemError(e)}`, cause: e });
}

const WRITE_BATCH = 1024 * 1024;

async function writeAll(fh: FileHandle, chunks: Uint8Array[], total: number, position: number): Promise<void> {
  const { bytesWritten } = await fh.writev(chunks, position);
  // writev may write less than asked (rare on regular files): finish the rest plainly.
  if (bytesWritten < total) await fh.write(Buffer.concat(chunks).subarray(bytesWritten), 0, total - bytesWritten, position + bytesWritten);
}

/** Size of the blob file, or undefined when absent; a file that cannot be checked throws. */
export async function blobSize(dir: string, digest: Digest): Promise<number | undefined> {
  const st = await statOrAbsent(blobPath(dir, digest));
  return st?.isFile() ? st.size : undefined;
}

/** A file found under `blobs/`: a digest-named blob, or something else (`digest` undefined). */
export interface BlobFile {
  readonly path: string;
  readonly digest: Digest | undefined;
  readonly size: number;
  /** False for a symlink, device, FIFO or socket under `blobs/`: never content, always a finding. */
  readonly regular: boolean;
}

/** Every regular file under `blobs/<alg>/` (unknown algorithms and names listed with `digest` undefined). */
export async function listBlobFiles(dir: string): Promise<BlobFile[]> {
  const out: BlobFile[] = [];
  const root = join(dir, 'blobs');
  for (const alg of await readdirOrEmpty(root)) {
    const algDir = join(root, alg);
    for (const name of await readdirOrEmpty(algDir)) {
      const path = join(algDir, name);
      const st = await lstatOrAbsent(path); // absent: removed meanwhile; lstat: a symlink is not content
      if (st === undefined || st.isDirectory()) continue;
      const digest = `${alg}:${name}`;
      out.push({ path, digest: isDigest(digest) ? digest : undefined, size: st.size, regular: st.isFile() });
    }
  }
  return out;
}

/** A leftover temp file (ingest or index.json write) and whether its writer is gone. */
export interface StrayFile {
  readonly path: string;
  readonly size: number;
  /** True when the writing process no longer exists: safe to delete. */
  readonly abandoned: boolean;
  /** A resumable download ({@link partialName}): a pull resumes it; only fsck --clean and gc delete it. */
  readonly resumable: boolean;
}

/** Temp files in `ingest/` and beside index.json (writeFileAtomic's `.index.json.tmp-<pid>-…`). */
export async function listStrays(dir: string): Promise<StrayFile[]> {
  const out: StrayFile[] = [];
  const ingest = await readdirOrEmpty(join(dir, INGEST_DIR));
  const candidates = [
    ...ingest.filter((n) => !PARTIAL.test(n)).map((n) => ({ path: join(dir, INGEST_DIR, n), pid: pidIn(n, /^[0-9a-f]+-(\d+)-[0-9a-f]+$/) })),
    ...(await readdirOrEmpty(dir))
      .filter((n) => /^\.(index\.json|oci-layout)\.tmp-\d+-[0-9a-f]+$/.test(n))
      .map((n) => ({ path: join(dir, n), pid: pidIn(n, /\.tmp-(\d+)-/) })),
  ];
  for (const c of candidates) {
    const st = await statOrAbsent(c.path); // absent: its writer renamed or removed it meanwhile
    if (st?.isFile()) out.push({ path: c.path, size: st.size, abandoned: c.pid === undefined || !processAlive(c.pid), resumable: false });
  }
  for (const name of ingest.filter((n) => PARTIAL.test(n))) {
    const path = join(dir, INGEST_DIR, name);
    const st = await lstatOrAbsent(path);
    if (!st) continue;
    out.push({ path, size: st.size, abandoned: !st.isFile() || !(await lockedByOther(path)), resumable: st.isFile() });
  }
  return out;
}

const PARTIAL = /^[a-z0-9]+-[0-9a-f]+\.partial$/;

/** True when some open file description holds the flock of `path` (a live download). */
async function lockedByOther(path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot open: ${describeSystemError(e)}`, cause: e });
  }
  try {
    return !tryFlock(fh, path);
  } finally {
    await fh.close();
  }
}

function pidIn(name: string, re: RegExp): number | undefined {
  const m = re.exec(name);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}


async function readdirOrEmpty(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot list: ${describeSystemError(e)}`, cause: e });
  }
}
