import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { MosError, describeSystemError, isMosError, parseDigest, silentLogger, splitDigest, type Digest, type Logger } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { childrenOf, isIndexType, isManifestType, sniffManifestType } from './graph.js';
import { listBlobFiles, listStrays, type BlobFile } from './layout/blobs.js';
import { retainEntries, tagOf } from './layout/index-file.js';
import type { LayoutStore } from './layout/store.js';
import { markReachable, planSweep, type NodeState, type SweepCandidate } from './maintenance-plan.js';
import { MAX_MANIFEST_BYTES } from './media-types.js';
import type { Descriptor } from './types.js';

/** How `fsck` runs. */
export interface FsckOptions {
  /** Delete temp files left by crashed writers (never those of a live process). Default false. */
  readonly clean?: boolean;
  /** Blobs hashed at once; default 2. */
  readonly concurrency?: number;
  readonly log?: Logger;
}

/** What `fsck` found. `ok` is false when anything referenced is missing, corrupt or unusable. */
export interface FsckResult {
  readonly ok: boolean;
  /** Blobs hashed and their total size. */
  readonly blobs: number;
  readonly bytes: number;
  /** Referenced from the index.json graph but absent. */
  readonly missing: readonly Digest[];
  /** Content that does not hash to its name (referenced or not). */
  readonly corrupt: readonly Digest[];
  /** Present, intact, but referenced by nothing (gc removes them). */
  readonly dangling: readonly Digest[];
  /** Temp files left by a crashed writer (removed when `clean`). */
  readonly strays: readonly string[];
  /** Files under blobs/ that are not named by a digest (left alone). */
  readonly unknownFiles: readonly string[];
  /** One line per problem, naming the blob and what is wrong. */
  readonly problems: readonly string[];
}

/**
 * Verifies a layout: re-hashes every blob, walks the graph from index.json (nested indexes, manifests,
 * configs, layers) and reports what is missing, corrupt or dangling. Changes nothing unless `clean`.
 */
export async function fsck(store: LayoutStore, opts: FsckOptions = {}): Promise<FsckResult> {
  const log = opts.log ?? silentLogger;
  // A damaged index.json is a finding like any other: report it and check the blobs all the same.
  const indexProblems: string[] = [];
  const index = await store.readIndex().catch((e: unknown) => {
    if (!isMosError(e, 'OCI_LAYOUT_INVALID', 'OCI_MANIFEST_INVALID', 'OCI_REFERENCE_INVALID', 'OCI_SIZE_EXCEEDS_LIMIT')) throw e;
    indexProblems.push(`${e.subject ?? 'index.json'}: ${e.message}`);
    return { manifests: [] as Descriptor[] };
  });
  const files = await listBlobFiles(store.dir);
  const present = new Map<Digest, BlobFile>();
  for (const f of files) if (f.digest !== undefined) present.set(f.digest, f);
  const corrupt = new Set<Digest>();
  await forEachLimited([...present.values()], opts.concurrency ?? 2, async (f) => {
    if (f.regular && !(await hashesToName(f))) corrupt.add(f.digest!);
  });
  const problems: string[] = [...indexProblems, ...[...corrupt].map((d) => `${d}: content does not hash to its name`)];
  // A symlink (or device) under blobs/ could point outside the layout and change after any check.
  for (const f of files.filter((f) => !f.regular)) {
    problems.push(`${f.path}: is not a regular file (a symlink or device under blobs/)`);
    if (f.digest !== undefined) corrupt.add(f.digest);
  }
  const mark = await markReachable(index.manifests, async (d) => {
    const file = present.get(d.digest);
    if (!file) return { kind: 'absent' };
    if (corrupt.has(d.digest)) return { kind: 'bad', message: 'corrupt' };
    if (file.size !== d.size) return { kind: 'bad', message: `is ${file.size} bytes, referenced as ${d.size}` };
    return loadChildren(store, d);
  });
  for (const [d, parent] of mark.missing) problems.push(`${d}: missing (referenced by ${parent ?? 'index.json'})`);
  for (const [d, message] of mark.bad) if (!corrupt.has(d)) problems.push(`${d}: ${message}`);
  const strays = await listStrays(store.dir);
  if (opts.clean) {
    for (const s of strays.filter((s) => s.abandoned)) {
      await rm(s.path, { force: true });
      log.info('removed stray temp file', { path: s.path });
    }
  }
  const dangling = [...present.keys()].filter((d) => !mark.reachable.has(d) && !corrupt.has(d)).sort();
  return {
    ok: problems.length === 0,
    blobs: present.size,
    bytes: [...present.values()].reduce((n, f) => n + f.size, 0),
    missing: [...mark.missing.keys()],
    corrupt: [...corrupt].sort(),
    dangling,
    strays: strays.map((s) => s.path),
    unknownFiles: files.filter((f) => f.digest === undefined).map((f) => f.path),
    problems,
  };
}

/** What gc keeps and how it runs. */
export interface GcOptions {
  /**
   * Manifest or index digests to keep, with everything they reference. Everything else is removed,
   * and index.json entries (tags) pointing at anything unkept are dropped: the store is mosctl's.
   */
  readonly roots: readonly string[];
  /** Report what would go, change nothing. */
  readonly dryRun?: boolean;
  readonly log?: Logger;
}

/** What gc removed (or, with dryRun, would remove). */
export interface GcResult {
  readonly dryRun: boolean;
  /** Blobs kept. */
  readonly retained: number;
  readonly removed: readonly { readonly digest: Digest; readonly size: number }[];
  readonly bytesFreed: number;
  /** index.json entries dropped: their tag, or the digest of an untagged entry. */
  readonly untagged: readonly string[];
  /** Roots not in the store (nothing to keep for them; fsck the config against the store). */
  readonly missingRoots: readonly Digest[];
  /** Abandoned temp files removed. */
  readonly strays: readonly string[];
}

/**
 * Mark and sweep: keeps `roots` and their graphs, drops index.json entries of anything else (atomic
 * rewrite under the store lock), then deletes unkept blobs indexes-first. Invalid roots are rejected
 * before anything changes. Callers must stop concurrent copies into the store (system gc holds the
 * config lock): a blob pushed but not yet referenced would look like garbage.
 */
export async function gc(store: LayoutStore, opts: GcOptions): Promise<GcResult> {
  const log = opts.log ?? silentLogger;
  const dryRun = opts.dryRun ?? false;
  const roots = opts.roots.map((r, i) => parseDigest(r, `gc roots[${i}]`));
  const index = await store.readIndex();
  const files = await listBlobFiles(store.dir);
  const present = new Map<Digest, BlobFile>();
  for (const f of files) if (f.digest !== undefined) present.set(f.digest, f);
  const rootDescs: Descriptor[] = [];
  const missingRoots: Digest[] = [];
  for (const r of [...new Set(roots)]) {
    const file = present.get(r);
    if (!file) missingRoots.push(r);
    else rootDescs.push(index.manifests.find((d) => d.digest === r) ?? { mediaType: await sniffKind(file, r), digest: r, size: file.size });
  }
  const mark = await markReachable(rootDescs, async (d) => {
    const file = present.get(d.digest);
    if (!file) return { kind: 'absent' };
    return loadChildren(store, d);
  });
  for (const [d, message] of mark.bad) log.warn('kept an unreadable blob reachable from a root', { digest: d, message });
  const keep = (d: Descriptor) => mark.reachable.has(d.digest);
  const untagged = retainEntries(index, keep).removed.map((d) => tagOf(d) ?? d.digest);
  const candidates: SweepCandidate[] = [];
  for (const [digest, f] of present) {
    if (mark.reachable.has(digest)) continue;
    candidates.push({ digest, size: f.size, kind: await kindOf(f) });
  }
  const sweep = planSweep(candidates, mark.reachable);
  const strays = (await listStrays(store.dir)).filter((s) => s.abandoned);
  if (!dryRun) {
    if (untagged.length > 0) await store.updateIndex((current) => retainEntries(current, keep).index);
    for (const c of sweep) await store.removeBlob(c.digest);
    for (const s of strays) await rm(s.path, { force: true });
    log.info('gc done', { removed: sweep.length, untagged: untagged.length });
  }
  return {
    dryRun,
    retained: mark.reachable.size,
    removed: sweep.map((c) => ({ digest: c.digest, size: c.size })),
    bytesFreed: sweep.reduce((n, c) => n + c.size, 0),
    untagged,
    missingRoots,
    strays: strays.map((s) => s.path),
  };
}

/** Children of a stored node; a manifest that fails verification or parsing is 'bad' (kept, reported). */
async function loadChildren(store: LayoutStore, d: Descriptor): Promise<NodeState> {
  if (!isManifestType(d.mediaType)) return { kind: 'ok', children: [] };
  try {
    return { kind: 'ok', children: childrenOf(d, await store.fetchBytes(d)) };
  } catch (e) {
    if (e instanceof MosError) return { kind: 'bad', message: e.message };
    throw e;
  }
}

async function hashesToName(f: BlobFile): Promise<boolean> {
  const { algorithm, hex } = splitDigest(f.digest!);
  const hash = createHash(algorithm);
  try {
    for await (const chunk of createReadStream(f.path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: f.path, message: `cannot read: ${describeSystemError(e)}`, cause: e });
  }
  return hash.digest('hex') === hex;
}

async function kindOf(f: BlobFile): Promise<SweepCandidate['kind']> {
  const type = await sniffKind(f, f.digest!);
  return isIndexType(type) ? 'index' : isManifestType(type) ? 'manifest' : 'blob';
}

// Small JSON blobs may be manifests; anything else (or unparseable) is a plain blob. A blob that cannot
// be read is an error, not a guess.
async function sniffKind(f: BlobFile, digest: Digest): Promise<string> {
  if (f.size > MAX_MANIFEST_BYTES || f.size < 2) return 'application/octet-stream';
  const bytes = await readFileLimited(f.path, MAX_MANIFEST_BYTES);
  try {
    return sniffManifestType(bytes, digest);
  } catch (e) {
    if (isMosError(e, 'OCI_MANIFEST_INVALID')) return 'application/octet-stream';
    throw e;
  }
}

async function forEachLimited<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

/**
 * Removes the temp files of writers that are gone (an index.json write, a blob half-written from a
 * stream) but keeps resumable downloads (`*.partial`); a live writer's files are left alone. Run by a writer before it copies into the store, so a crash
 * leaves no partial file behind for long. Returns the paths removed.
 */
export async function sweepStrays(store: LayoutStore): Promise<string[]> {
  // Resumable downloads stay: the pull about to run continues them.
  const gone = (await listStrays(store.dir)).filter((s) => s.abandoned && !s.resumable);
  for (const s of gone) await rm(s.path, { force: true });
  return gone.map((s) => s.path);
}
