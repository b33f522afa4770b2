import { MosError, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { parseJsonObject } from './documents.js';
import { childrenOf, isIndexType, isManifestType } from './graph.js';
import { resolvePlatform } from './platform.js';
import type { ContentSource, ContentTarget, Descriptor, Platform, TransferOptions } from './types.js';

/** What `copy` copies, from where to where. */
export interface CopyOptions {
  readonly src: ContentSource;
  readonly dst: ContentTarget;
  /** A tag or a digest in `src`, or the root's descriptor when already resolved. */
  readonly reference: string | Descriptor;
  /** Tag the copied root with this name in `dst` (default: untagged, unless dst needs none). */
  readonly tag?: string;
  /**
   * When the reference names an index, copy only this platform's manifest (first match wins) and make
   * it the result. Default: the whole index with every manifest.
   */
  readonly platform?: Platform;
  /** Blobs transferred at once; default 4. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** What `copy` did. Counts and bytes cover non-manifest blobs (configs, layers); manifests are counted apart. */
export interface CopyResult {
  /** The root that was copied (and tagged): its media type, digest and size. */
  readonly descriptor: Descriptor;
  readonly blobsCopied: number;
  readonly bytesCopied: number;
  readonly blobsSkipped: number;
  readonly manifestsCopied: number;
}

/** Options of `copyDescriptor`: `copy` with the root given as a descriptor instead of a reference. */
export type CopyDescriptorOptions = Omit<CopyOptions, 'reference' | 'platform'> & { readonly descriptor: Descriptor };

const DEFAULT_CONCURRENCY = 4;
const PROGRESS_STEP = 1024 * 1024;

/**
 * Copies one image graph (index -> manifests -> config + layers) from `src` to `dst`: children before
 * parents, so a manifest is never stored before everything it references; manifest bytes copied
 * exactly; blobs `dst` already has are not transferred; every blob verified while it streams. Manifests
 * are always re-read from `src` so a store missing children is repaired by a re-run.
 */
export async function copy(opts: CopyOptions): Promise<CopyResult> {
  const t: TransferOptions = { ...(opts.signal ? { signal: opts.signal } : {}) };
  let root = typeof opts.reference === 'string' ? await opts.src.resolve(opts.reference, t) : opts.reference;
  const subject = typeof opts.reference === 'string' ? opts.reference : opts.reference.digest;
  if (opts.platform !== undefined && isIndexType(root.mediaType)) {
    const list = childrenOf(root, await opts.src.fetchBytes(root, t));
    root = resolvePlatform(list, opts.platform, subject);
  }
  return copyDescriptor({ ...opts, descriptor: root });
}

/** Copies the graph under `descriptor` (see `copy`); for artifacts whose descriptor is already known. */
export async function copyDescriptor(opts: CopyDescriptorOptions): Promise<CopyResult> {
  const root: Descriptor = {
    mediaType: opts.descriptor.mediaType,
    digest: opts.descriptor.digest,
    size: opts.descriptor.size,
    ...(opts.descriptor.artifactType !== undefined ? { artifactType: opts.descriptor.artifactType } : {}),
  };
  const copier = new Copier(opts);
  try {
    await copier.visit(root, true);
  } catch (e) {
    // Later failures are mostly our own abort of the other transfers: report the one that started it.
    throw copier.firstError ?? e;
  } finally {
    copier.dispose();
  }
  return { descriptor: root, ...copier.counts };
}

class Copier {
  readonly counts = { blobsCopied: 0, bytesCopied: 0, blobsSkipped: 0, manifestsCopied: 0 };
  firstError: unknown;
  private readonly opts: CopyDescriptorOptions;
  private readonly log: Logger;
  private readonly progress: OnProgress;
  private readonly abort = new AbortController();
  private readonly visits = new Map<string, Promise<void>>();
  private readonly limit: Limiter;
  private readonly unlink: () => void;

  constructor(opts: CopyDescriptorOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.progress = opts.onProgress ?? (() => {});
    const n = opts.concurrency ?? DEFAULT_CONCURRENCY;
    this.limit = new Limiter(Number.isInteger(n) && n > 0 ? n : DEFAULT_CONCURRENCY);
    // One internal signal: the caller's abort, or our own on the first failure, stops every transfer.
    const outer = opts.signal;
    const onAbort = () => this.abort.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    outer?.addEventListener('abort', onAbort, { once: true });
    this.unlink = () => outer?.removeEventListener('abort', onAbort);
  }

  dispose(): void {
    this.unlink();
  }

  /** Copies `desc` and its subgraph once, however often it is referenced. */
  visit(desc: Descriptor, isRoot = false): Promise<void> {
    const key = `${desc.digest}${isRoot ? '#root' : ''}`;
    let p = this.visits.get(key);
    if (!p) {
      p = (isManifestType(desc.mediaType) ? this.manifest(desc, isRoot) : this.blob(desc)).catch((e: unknown) => {
        this.firstError ??= e;
        this.abort.abort(e);
        throw e;
      });
      this.visits.set(key, p);
    }
    return p;
  }

  private get t(): TransferOptions {
    return { signal: this.abort.signal, ...(this.opts.log ? { log: this.opts.log } : {}) };
  }

  private async manifest(desc: Descriptor, isRoot: boolean): Promise<void> {
    const bytes = await this.limit.run(() => this.opts.src.fetchBytes(desc, this.t));
    // Validates the document too: a manifest we cannot parse is not copied.
    const doc = parseJsonObject(bytes, desc.digest);
    if (doc['schemaVersion'] === 1) {
      throw new MosError({ code: 'OCI_MEDIA_TYPE_UNSUPPORTED', subject: desc.digest, message: 'Docker schema 1 manifests are not supported' });
    }
    await settleAll(childrenOf(desc, bytes).map((c) => this.visit(c)));
    const tag = isRoot ? this.opts.tag : undefined;
    if (tag === undefined && (await this.opts.dst.exists(desc, this.t))) return;
    await this.opts.dst.pushManifest(desc, bytes, { ...this.t, ...(tag !== undefined ? { tag } : {}) });
    this.counts.manifestsCopied++;
    this.log.debug('manifest copied', { digest: desc.digest, mediaType: desc.mediaType });
  }

  private async blob(desc: Descriptor): Promise<void> {
    if (await this.opts.dst.exists(desc, this.t)) {
      this.counts.blobsSkipped++;
      this.progress({ kind: 'blob-done', digest: desc.digest, total: desc.size, skipped: true });
      return;
    }
    await this.limit.run(async () => {
      this.abort.signal.throwIfAborted();
      // A function of the offset: a layout destination resumes what a killed run left in ingest/.
      await this.opts.dst.pushBlob(desc, (offset) => this.counting(this.opts.src.fetchBlob(desc, { ...this.t, offset, sizeOnly: true }), desc, offset), this.t);
    });
    this.counts.blobsCopied++;
    this.counts.bytesCopied += desc.size;
    this.progress({ kind: 'blob-done', digest: desc.digest, total: desc.size, skipped: false });
  }

  private async *counting(source: AsyncIterable<Uint8Array>, desc: Descriptor, offset: number): AsyncGenerator<Uint8Array> {
    const step = Math.max(PROGRESS_STEP, Math.floor(desc.size / 100));
    let done = offset;
    let reported = offset;
    this.progress({ kind: 'blob', digest: desc.digest, done, total: desc.size });
    for await (const chunk of source) {
      done += chunk.byteLength;
      if (done - reported >= step || done === desc.size) {
        reported = done;
        this.progress({ kind: 'blob', digest: desc.digest, done, total: desc.size });
      }
      yield chunk;
    }
  }
}

/** Waits for every promise (no transfer keeps running after we return), then throws the first failure. */
async function settleAll(ps: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(ps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Runs at most `n` tasks at once, in arrival order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
