import { MosError, isMosError, type Logger, type OnProgress } from '../base/index.js';
import type { InstallTarget } from '../manifest/index.js';
import { FallbackSource, copy, firstThatWorks, imageContentBytes, sweepStrays, type ContentStore, type Descriptor } from '../oci/index.js';
import type { FetchedInstall } from './fetch-install.js';
import { checkSquashfsImage, hasImage, openExistingStore, openStore, targetDescriptor } from './store.js';

/** What pulling the targets did. */
export interface PullTargetsResult {
  /** Targets whose image was already in the store (nothing fetched). */
  readonly present: readonly string[];
  readonly pulled: readonly string[];
  readonly blobBytes: number;
}

export interface PullTargetsOptions {
  readonly root: string;
  readonly targets: readonly InstallTarget[];
  readonly fetched: FetchedInstall;
  /** Copy even images tagged in the store (a repair: blobs already present are still skipped). */
  readonly force?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/**
 * Copies every target image into `<root>/atomfs-store/mos`, tagged by its full digest (mos's
 * convention). Two passes: first every image manifest is fetched by its SIGNED digest and size (so the
 * registry cannot substitute anything) and checked to be a squashfs image; only then are blobs copied,
 * each verified while it streams. Images already tagged in the store are not fetched at all.
 */
export async function pullTargets(opts: PullTargetsOptions): Promise<PullTargetsResult> {
  // Nothing is created before every image manifest checked out: a refused one leaves no store behind.
  const existing = await openExistingStore(opts.root, opts.log);
  const t = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
  const todo: { target: InstallTarget; desc: Descriptor; bytes: number }[] = [];
  const present: string[] = [];
  for (const target of opts.targets) {
    const desc = targetDescriptor(target);
    if (!opts.force && existing && (await hasImage(existing, desc))) {
      present.push(target.service_name);
      continue;
    }
    const { store: src } = opts.fetched.imageSource(target.digest);
    let bytes: Uint8Array;
    try {
      bytes = await src.fetchBytes(desc, t);
    } catch (e) {
      throw wrapTarget(e, target);
    }
    todo.push({ target, desc, bytes: imageContentBytes(checkSquashfsImage(bytes, target)) });
  }
  // A complete image whose tag is missing (a pull that failed after copying it) is tagged now too.
  const tagged = new Set(existing ? (await existing.listTags()).map((x) => x.tag) : []);
  const untagged = opts.targets.filter((x) => !tagged.has(x.digest) && !todo.some((d) => d.target === x));
  if (todo.length === 0) {
    if (existing && untagged.length) await existing.tagAll(untagged.map((x) => ({ desc: targetDescriptor(x), tag: x.digest })));
    return { present, pulled: [], blobBytes: 0 };
  }
  const store = existing ?? (await openStore(opts.root, opts.log));
  // The caller holds the config lock: a temp file of a writer that is gone is a crash's leftover.
  const swept = await sweepStrays(store);
  if (swept.length) opts.log?.info(`removed ${swept.length} partial file(s) a crashed writer left in the store`);
  let blobBytes = 0;
  opts.onProgress?.({ kind: 'transfer', total: todo.reduce((n, x) => n + x.bytes, 0), items: todo.length });
  for (const { target, desc } of todo) {
    const { store: src } = opts.fetched.imageSource(target.digest);
    opts.onProgress?.({ kind: 'item', name: target.service_name });
    try {
      // Untagged until all are complete: the blobs of a failed pull are a verified download cache
      // (the next run reuses them, gc removes them), never a half-present image in index.json.
      const copyFrom = (from: ContentStore) => copy({ src: from, dst: store, reference: desc, ...t, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
      // Through mirrors: a location that fails (down, a wrong or cut blob) gives way to the next; what
      // was stored verified stays, so the next one fetches only the rest.
      const r = src instanceof FallbackSource
        ? await firstThatWorks(src.candidates, (c) => copyFrom(c.store), `target ${target.service_name}`)
        : await copyFrom(src);
      blobBytes += r.bytesCopied;
    } catch (e) {
      throw wrapTarget(e, target);
    }
  }
  await store.tagAll([...todo.map(({ target, desc }) => ({ desc, tag: target.digest })), ...untagged.map((x) => ({ desc: targetDescriptor(x), tag: x.digest }))]);
  return { present, pulled: todo.map((x) => x.target.service_name), blobBytes };
}

function wrapTarget(e: unknown, target: InstallTarget): unknown {
  if (!isMosError(e)) return e;
  if (e.subject?.includes(target.service_name)) return e;
  return new MosError({ code: e.code, subject: `target ${target.service_name}: ${e.subject ?? target.digest}`, message: e.message, hint: e.hint, cause: e });
}

/** What one target still needs from its source: the blobs (manifest, config, layers) not in the store. */
export interface PullNeed {
  readonly target: string;
  readonly blobs: readonly { readonly digest: string; readonly size: number }[];
  readonly bytes: number;
}

/**
 * Measures what pulling `targets` would fetch, writing nothing: an image already tagged in the store
 * needs nothing; otherwise its manifest is fetched by the signed digest and every blob the store lacks
 * is counted. The store is not created if it does not exist (then everything is missing).
 */
export async function measurePull(opts: Omit<PullTargetsOptions, 'onProgress'>): Promise<PullNeed[]> {
  const store = await openExistingStore(opts.root, opts.log);
  const t = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
  const needs: PullNeed[] = [];
  for (const target of opts.targets) {
    const desc = targetDescriptor(target);
    if (store && (await hasImage(store, desc))) {
      needs.push({ target: target.service_name, blobs: [], bytes: 0 });
      continue;
    }
    const { store: src } = opts.fetched.imageSource(target.digest);
    let manifest;
    try {
      manifest = checkSquashfsImage(await src.fetchBytes(desc, t), target);
    } catch (e) {
      throw wrapTarget(e, target);
    }
    const blobs: { digest: string; size: number }[] = [];
    for (const d of [desc, manifest.config, ...manifest.layers]) {
      if (blobs.some((b) => b.digest === d.digest)) continue;
      if (store && (await store.exists(d))) continue;
      blobs.push({ digest: d.digest, size: d.size });
    }
    needs.push({ target: target.service_name, blobs, bytes: blobs.reduce((n, b) => n + b.size, 0) });
  }
  return needs;
}
