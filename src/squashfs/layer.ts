import { createReadStream } from 'node:fs';
import { lstat, open, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { MosError, describeSystemError, type Digest, type Logger } from '../base/index.js';
import { exec, fileError } from '../host/index.js';
import { SQUASHFS_GZIP_MEDIA_TYPE, SQUASHFS_ZSTD_MEDIA_TYPE, VERITY_BLOCK_SIZE } from './media-types.js';
import { parseSquashfsSuperblock, verityHashOffset, SQUASHFS_SUPERBLOCK_SIZE } from './superblock.js';
import { formatVerity, verifyVerity, verityParamsFor } from './verity.js';
import { pseudoWhiteoutLines } from './whiteouts.js';

/** Squashfs compression of a built layer. */
export type SquashfsCompression = 'zstd' | 'gzip';

export interface BuildSquashfsLayerOptions {
  /** Directory whose content becomes the layer (its own mode and owner become the layer root's). */
  readonly rootfs: string;
  /** Where the layer blob is written (replaced if present); must not be inside `rootfs`. */
  readonly outFile: string;
  /** Default: zstd when this mksquashfs supports it, else gzip. */
  readonly compression?: SquashfsCompression;
  /** Paths relative to `rootfs` added as overlay whiteouts (char 0:0); their parent directories must exist. */
  readonly whiteouts?: readonly string[];
  /** Kills mksquashfs; the partial output is removed. */
  readonly signal?: AbortSignal;
  readonly log?: Logger;
}

/** A built layer blob: squashfs, padded to 4096, then its dm-verity hash area at `hashOffset`. */
export interface LayerBuild {
  readonly path: string;
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  /** Verity root hash, lowercase hex; goes into the `io.stackeroci.stacker.atomfs_verity_root_hash` annotation. */
  readonly rootHash: string;
  /** Byte offset of the verity hash area (= padded squashfs size). */
  readonly hashOffset: number;
}

let zstdSupport: Promise<boolean> | undefined;

/** True when this mksquashfs lists zstd among its compressors (the rule stacker uses; cached). */
export function mksquashfsHasZstd(): Promise<boolean> {
  zstdSupport ??= exec(['mksquashfs', '-help'], { okCodes: [0, 1] }).then(
    (r) => /^\s*zstd\b/m.test(r.stdout + r.stderr),
    (e: unknown) => {
      zstdSupport = undefined;
      throw e;
    },
  );
  return zstdSupport;
}

/**
 * Builds one reproducible squashfs layer from `rootfs` with dm-verity data appended: the same tree
 * (names, content, modes, owners, xattrs; times ignored) gives the same bytes. The verity data is
 * checked with `veritysetup verify` before returning. Needs no root (ownership is read as is).
 */
export async function buildSquashfsLayer(opts: BuildSquashfsLayerOptions): Promise<LayerBuild> {
  const rootfs = resolve(opts.rootfs);
  const outFile = resolve(opts.outFile);
  await checkInputs(rootfs, outFile);
  const compression = opts.compression ?? ((await mksquashfsHasZstd()) ? 'zstd' : 'gzip');
  const pseudo = opts.whiteouts && opts.whiteouts.length > 0 ? pseudoWhiteoutLines(opts.whiteouts) : undefined;
  const pseudoFile = `${outFile}.pseudo`;
  await rm(outFile, { force: true });
  try {
    if (pseudo !== undefined) await writeFile(pseudoFile, pseudo);
    // Reproducible: fixed times; mksquashfs sorts entries and is deterministic across threads (4.4+).
    await exec([
      'mksquashfs', rootfs, outFile,
      '-noappend', '-no-progress', '-quiet',
      '-comp', compression,
      '-mkfs-time', '0', '-all-time', '0',
      ...(pseudo !== undefined ? ['-pf', pseudoFile] : []),
    ], opts.signal ? { signal: opts.signal } : {});
  } catch (e) {
    await rm(outFile, { force: true });
    throw e;
  } finally {
    if (pseudo !== undefined) await rm(pseudoFile, { force: true });
  }
  opts.log?.debug('squashfs built', { rootfs, outFile, compression });
  try {
    const hashOffset = await padToVerityBlock(outFile);
    const params = verityParamsFor((await fileDigest(outFile)).slice('sha256:'.length));
    const rootHash = await formatVerity(outFile, { hashOffset, params });
    await verifyVerity(outFile, { rootHash, hashOffset });
    const digest = await fileDigest(outFile);
    const size = (await stat(outFile)).size;
    const mediaType = compression === 'zstd' ? SQUASHFS_ZSTD_MEDIA_TYPE : SQUASHFS_GZIP_MEDIA_TYPE;
    return { path: outFile, digest, size, mediaType, rootHash, hashOffset };
  } catch (e) {
    await rm(outFile, { force: true });
    throw e;
  }
}

async function checkInputs(rootfs: string, outFile: string): Promise<void> {
  let st;
  try {
    st = await stat(rootfs);
  } catch (e) {
    throw fileError(e, rootfs, 'rootfs directory');
  }
  if (!st.isDirectory()) throw new MosError({ code: 'INPUT_INVALID', subject: rootfs, message: 'rootfs is not a directory' });
  if (outFile === rootfs || outFile.startsWith(rootfs + '/')) {
    throw new MosError({ code: 'INPUT_INVALID', subject: outFile, message: 'the layer file must not be inside the rootfs it is built from' });
  }
  try {
    if (!(await lstat(dirname(outFile))).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: dirname(outFile), message: `cannot write the layer here: ${describeSystemError(e)}`, cause: e });
  }
}

// mksquashfs pads to 4 KiB by default; make sure, since the verity data must start on a block boundary.
async function padToVerityBlock(file: string): Promise<number> {
  const fh = await open(file, 'r');
  let head: Buffer;
  try {
    head = Buffer.alloc(SQUASHFS_SUPERBLOCK_SIZE);
    await fh.read(head, 0, SQUASHFS_SUPERBLOCK_SIZE, 0);
  } finally {
    await fh.close();
  }
  const offset = verityHashOffset(parseSquashfsSuperblock(head, file));
  const size = (await stat(file)).size;
  if (size > offset) throw new MosError({ code: 'INTERNAL', subject: file, message: `mksquashfs wrote ${size} bytes, more than its ${offset} padded bytes` });
  if (size < offset) await truncate(file, offset);
  if (offset % VERITY_BLOCK_SIZE !== 0) throw new MosError({ code: 'INTERNAL', subject: file, message: 'verity offset not block aligned' });
  return offset;
}

/** sha256 digest of a file, streamed. */
export async function fileDigest(file: string): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
