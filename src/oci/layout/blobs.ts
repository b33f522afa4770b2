import { open, rename, rm, readdir, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MosError, describeSystemError, isDigest, splitDigest, type Digest } from '../../base/index.js';
import { ensureDir, fsyncDir, lstatOrAbsent, processAlive, statOrAbsent } from '../../host/index.js';
import { verified } from '../verify.js';
import type { Descriptor } from '../types.js';

// Blob files of a layout: `blobs/<alg>/<hex>` (0444), written through `ingest/` so that no partial or
// unverified content ever carries a digest name (oras-go content/oci/storage.go does the same).

/** Directory holding in-flight blob writes; skopeo and umoci ignore it. */
export const INGEST_DIR = 'ingest';

/** Path of a blob in the layout at `dir`. */
export function blobPath(dir: string, digest: Digest): string {
  const { algorithm, hex } = splitDigest(digest);
  return join(dir, 'blobs', algorithm, hex);
}

/** A temp name that records its writer's pid, so cleanup can tell a crashed write from a running one. */
function ingestName(digest: Digest): string {
  return `${splitDigest(digest).hex.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Streams `content` into the layout as `desc`: temp file in `ingest/`, size and digest checked while
 * streaming, fsync, chmod 0444, rename to its digest name, fsync of the blob directory. On any failure
 * the temp file is removed and nothing is stored. Returns the number of bytes written.
 */
export async function writeBlob(dir: string, desc: Descriptor, content: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
  const final = blobPath(dir, desc.digest);
  const ingest = join(dir, INGEST_DIR);
  await ensureDir(ingest);
  await ensureDir(join(final, '..'));
  const tmp = join(ingest, ingestName(desc.digest));
  let written = 0;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      // Network chunks are small (16-64 KiB): gather them and write with one writev per WRITE_BATCH.
      let batch: Uint8Array[] = [];
      let batched = 0;
      // Every byte is hashed here, whatever the source claims: the digest name is this store's promise.
      for await (const chunk of verified(content, desc)) {
        signal?.throwIfAborted();
        batch.push(chunk);
        batched += chunk.byteLength;
        if (batched >= WRITE_BATCH) {
          await writeAll(fh, batch, batched);
          written += batched;
          batch = [];
          batched = 0;
        }
      }
      if (batched > 0) await writeAll(fh, batch, batched);
      written += batched;
      await fh.sync();
      await fh.chmod(0o444);
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    await fsyncDir(join(final, '..'));
    return written;
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    if (e instanceof MosError || (e as Error).name === 'AbortError') throw e;
    throw new MosError({ code: 'HOST_IO', subject: final, message: `cannot store blob: ${describeSystemError(e)}`, cause: e });
  }
}

const WRITE_BATCH = 1024 * 1024;

async function writeAll(fh: FileHandle, chunks: Uint8Array[], total: number): Promise<void> {
  const { bytesWritten } = await fh.writev(chunks);
  // writev may write less than asked (rare on regular files): finish the rest plainly.
  if (bytesWritten < total) await fh.write(Buffer.concat(chunks).subarray(bytesWritten));
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
}

/** Temp files in `ingest/` and beside index.json (writeFileAtomic's `.index.json.tmp-<pid>-…`). */
export async function listStrays(dir: string): Promise<StrayFile[]> {
  const out: StrayFile[] = [];
  const candidates = [
    ...(await readdirOrEmpty(join(dir, INGEST_DIR))).map((n) => ({ path: join(dir, INGEST_DIR, n), pid: pidIn(n, /^[0-9a-f]+-(\d+)-[0-9a-f]+$/) })),
    ...(await readdirOrEmpty(dir))
      .filter((n) => /^\.(index\.json|oci-layout)\.tmp-\d+-[0-9a-f]+$/.test(n))
      .map((n) => ({ path: join(dir, n), pid: pidIn(n, /\.tmp-(\d+)-/) })),
  ];
  for (const c of candidates) {
    const st = await statOrAbsent(c.path); // absent: its writer renamed or removed it meanwhile
    if (st?.isFile()) out.push({ path: c.path, size: st.size, abandoned: c.pid === undefined || !processAlive(c.pid) });
  }
  return out;
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
