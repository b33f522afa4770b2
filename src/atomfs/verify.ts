import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, isMosError, splitDigest, type Logger } from '../base/index.js';
import { ensureDir, exec, openRegular, writeFileAtomic } from '../host/index.js';
import { parseSquashfsSuperblock, verityHashOffset, SQUASHFS_SUPERBLOCK_SIZE } from '../squashfs/index.js';
import type { PlannedLayer } from './plan.js';

/** What a blob looks like on disk: enough to mount it and to notice it changed since it was checked. */
export interface BlobFacts {
  readonly size: number;
  /** Where appended verity data starts (= squashfs bytes_used rounded up to 4096); the loop size limit. */
  readonly hashOffset: number;
  readonly hasVerityData: boolean;
  readonly dev: number;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

/** Reads the squashfs superblock and stat of a layer blob; IMAGE_INVALID naming the layer when malformed. */
export async function readBlobFacts(layer: PlannedLayer): Promise<BlobFacts> {
  const subject = `layer ${layer.digest}`;
  let fh;
  try {
    ({ fh } = await openRegular(layer.blob, { noFollow: true })); // a blob is a regular file of its layout
  } catch (e) {
    if (isMosError(e, 'INPUT_INVALID')) throw new MosError({ code: 'OCI_BLOB_CORRUPT', subject, message: `blob ${layer.blob} ${e.message}`, hint: 'run mosctl fsck (--repair fetches damaged blobs again)', cause: e });
    throw new MosError({ code: 'OCI_BLOB_UNKNOWN', subject, message: `cannot open blob ${layer.blob}: ${e instanceof Error ? e.message : String(e)}`, cause: e });
  }
  try {
    const st = await fh.stat({ bigint: false });
    const head = Buffer.alloc(SQUASHFS_SUPERBLOCK_SIZE);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const hashOffset = verityHashOffset(parseSquashfsSuperblock(head.subarray(0, bytesRead), subject));
    if (hashOffset > st.size) {
      throw new MosError({ code: 'IMAGE_INVALID', subject, message: `blob is ${st.size} bytes but its squashfs claims ${hashOffset}: truncated` });
    }
    return { size: st.size, hashOffset, hasVerityData: hashOffset < st.size, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
  } finally {
    await fh.close();
  }
}

interface Marker {
  readonly digest: string;
  readonly rootHash: string | null;
  readonly blob: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** The Merkle tree was checked in userspace too (false: only the sha256; dm-verity checks reads). */
  readonly tree: boolean;
}

function markerOf(layer: PlannedLayer, f: BlobFacts, tree: boolean): Marker {
  return { digest: layer.digest, rootHash: layer.rootHash ?? null, blob: layer.blob, dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs, ctimeMs: f.ctimeMs, tree };
}

/** Path of the verified-marker of a layer digest. */
export function markerPath(verifiedDir: string, layer: PlannedLayer): string {
  return join(verifiedDir, splitDigest(layer.digest).hex);
}

/** Blob paths recorded by verified markers: the blobs whose loop devices cleanup may consider ours. */
export async function readMarkerBlobs(verifiedDir: string, names: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const n of names) {
    try {
      const m = JSON.parse(await readFile(join(verifiedDir, n), 'utf8')) as Partial<Marker>;
      if (typeof m.blob === 'string') out.add(m.blob);
    } catch {
      // a torn or foreign file is no evidence of anything
    }
  }
  return out;
}

/**
 * Checks a layer blob before its first mount, unless a marker says this exact file (digest, root hash,
 * device, inode, size, mtime, ctime) already passed. With a root hash: `veritysetup verify` of the
 * Merkle tree (ATOMFS_VERITY_MISMATCH on failure), unless `kernelChecksTree` (a dm-verity mount follows);
 * always: the blob's sha256 against its digest
 * (OCI_BLOB_CORRUPT). Verity data without a root hash, or a root hash without data: ATOMFS_VERITY_MISSING.
 * Returns whether the check ran (false: the marker was current).
 */
export async function verifyLayer(
  layer: PlannedLayer,
  facts: BlobFacts,
  opts: {
    verifiedDir: string;
    log: Logger;
    signal?: AbortSignal;
    kernelChecksTree?: boolean;
    /** Collect the marker write here instead of writing it (the caller writes once every layer passed). */
    pendingWrites?: (() => Promise<void>)[];
  },
): Promise<boolean> {
  const subject = `layer ${layer.digest}`;
  if (layer.rootHash !== undefined && !facts.hasVerityData) {
    throw new MosError({ code: 'ATOMFS_VERITY_MISSING', subject, message: 'descriptor carries a verity root hash but the blob has no verity data', hint: 'the blob or the manifest is wrong; re-pull the image' });
  }
  if (layer.rootHash === undefined && facts.hasVerityData) {
    throw new MosError({ code: 'ATOMFS_VERITY_MISSING', subject, message: 'blob carries verity data but its descriptor has no root hash annotation', hint: 'rebuild or re-publish the image with the root hash annotation' });
  }
  const path = markerPath(opts.verifiedDir, layer);
  // Mounted through dm-verity, the kernel checks every block against the tree at read time (and the
  // device is probed after opening): reading the whole tree first would only double the boot's I/O.
  const kernel = opts.kernelChecksTree === true && layer.rootHash !== undefined;
  const full = JSON.stringify(markerOf(layer, facts, true));
  const want = kernel ? JSON.stringify(markerOf(layer, facts, false)) : full;
  try {
    const have = await readFile(path, 'utf8');
    if (have === full || have === want) return false;
  } catch {
    // no marker yet
  }
  if (layer.rootHash !== undefined && !kernel) {
    opts.log.debug('verifying verity tree', { layer: layer.digest });
    try {
      await exec(['veritysetup', 'verify', layer.blob, layer.blob, layer.rootHash, `--hash-offset=${facts.hashOffset}`], { signal: opts.signal });
    } catch (e) {
      if (!isMosError(e, 'HOST_EXEC_FAILED')) throw e;
      throw new MosError({
        code: 'ATOMFS_VERITY_MISMATCH',
        subject,
        message: `verity check failed: the blob does not match its root hash ${layer.rootHash}`,
        hint: 'the stored blob is corrupt or was tampered with: mosctl fsck --repair removes it and fetches it again (verified)',
        cause: e,
      });
    }
  }
  // Always the sha256 too: verity covers the squashfs data, not every byte of the blob (its superblock's
  // UUID and salt, the padding), and the store's promise is that a blob hashes to its name.
  opts.log.debug('verifying blob digest', { layer: layer.digest });
  const { algorithm, hex } = splitDigest(layer.digest);
  const hash = createHash(algorithm);
  const { fh } = await openRegular(layer.blob, { noFollow: true });
  for await (const chunk of fh.createReadStream({ signal: opts.signal })) hash.update(chunk as Buffer);
  if (hash.digest('hex') !== hex) {
    throw new MosError({ code: 'OCI_BLOB_CORRUPT', subject, message: 'blob content does not hash to its digest', hint: 'mosctl fsck --repair removes it and fetches it again (verified)' });
  }
  const write = async () => {
    await ensureDir(opts.verifiedDir);
    await writeFileAtomic(path, want);
  };
  if (opts.pendingWrites) opts.pendingWrites.push(write);
  else await write();
  return true;
}
