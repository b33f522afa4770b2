import { rm } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { MosError, describeSystemError, isDigest, silentLogger, type Digest, type Logger } from '../../base/index.js';
import { acquireLock, exists, openRegular, readFileLimited, writeFileAtomic } from '../../host/index.js';
import { childrenOf, isIndexType, sniffManifestType } from '../graph.js';
import { MAX_MANIFEST_BYTES } from '../media-types.js';
import { verifiedFrom, verifyBytes } from '../verify.js';
import type { BlobContent, ContentStore, Descriptor, FetchBlobOptions, TransferOptions } from '../types.js';
import { blobPath, blobSize, writeBlob } from './blobs.js';
import { INDEX_FILE, LOCK_FILE, createLayout, readHeader, readHeaderVersion } from './create.js';
import {
  MAX_INDEX_JSON_BYTES, layoutTags, parseLayoutIndex, serializeLayoutIndex, tagOf, validateTag, withTag, withoutTag,
  type LayoutIndex, type LayoutTag,
} from './index-file.js';

/** How `openLayout` behaves. */
export interface OpenLayoutOptions {
  /** Create the layout when `dir` is missing or empty (default false: a missing layout is an error). */
  readonly create?: boolean;
  readonly log?: Logger;
}

/** Nested indexes deeper than this are not searched for tags (hostile cycles are cut by `seen` anyway). */
const MAX_NESTING = 8;

/**
 * Opens the OCI image layout at `dir` (image-spec image-layout.md). Throws NOT_FOUND when it is missing
 * (unless `create`), OCI_LAYOUT_INVALID when `dir` is not a layout. Creating is idempotent and
 * crash-safe: a new layout is built aside and renamed into place; an existing empty directory is filled
 * with `oci-layout` written last; a non-empty foreign directory is refused.
 */
export async function openLayout(dir: string, opts: OpenLayoutOptions = {}): Promise<LayoutStore> {
  const abs = resolvePath(dir);
  const store = new LayoutStore(abs, opts.log ?? silentLogger);
  const header = await readHeader(abs);
  if (header === 'absent') {
    if (!opts.create) {
      const present = await exists(abs);
      throw new MosError({
        code: present ? 'OCI_LAYOUT_INVALID' : 'NOT_FOUND',
        subject: abs,
        message: present ? 'not an OCI image layout (no oci-layout file)' : 'no such OCI image layout',
        hint: 'check the path, e.g. oci:DIR:TAG names the directory holding oci-layout and index.json',
      });
    }
    await createLayout(abs);
  } else {
    await readHeaderVersion(abs, header);
  }
  return store;
}

/** An OCI image layout on disk, readable by skopeo and umoci. Reads never lock; index.json writes hold `<dir>/.lock`. */
export class LayoutStore implements ContentStore {
  /** Absolute path of the layout. */
  readonly dir: string;
  private readonly log: Logger;
  private chain: Promise<unknown> = Promise.resolve();

  /** Use `openLayout`. */
  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /** Path of `digest`'s blob file (it may not exist). */
  blobPath(digest: Digest): string {
    return blobPath(this.dir, digest);
  }

  /** Reads and validates index.json (OCI_LAYOUT_INVALID on any defect). */
  async readIndex(): Promise<LayoutIndex> {
    const path = join(this.dir, INDEX_FILE);
    let bytes: Buffer;
    try {
      bytes = await readFileLimited(path, MAX_INDEX_JSON_BYTES);
    } catch (e) {
      if (e instanceof MosError && e.code === 'INPUT_INVALID') {
        throw new MosError({ code: 'OCI_LAYOUT_INVALID', subject: path, message: e.message, hint: 'restore index.json from a backup, or re-create the layout', cause: e });
      }
      if (e instanceof MosError && e.code === 'NOT_FOUND') throw new MosError({ code: 'OCI_LAYOUT_INVALID', subject: path, message: 'index.json is missing', cause: e });
      throw e;
    }
    return parseLayoutIndex(bytes, path);
  }

  /**
   * Replaces index.json with `fn(current)` atomically (temp + fsync + rename) while holding the store
   * lock, so concurrent writers (in this process or others) never lose each other's tags.
   */
  async updateIndex(fn: (current: LayoutIndex) => LayoutIndex): Promise<LayoutIndex> {
    return this.locked(async () => {
      const next = fn(await this.readIndex());
      await writeFileAtomic(join(this.dir, INDEX_FILE), serializeLayoutIndex(next));
      return next;
    });
  }

  /** Every tag with its descriptor, in index.json order (nested indexes not included). */
  async listTags(): Promise<LayoutTag[]> {
    return layoutTags(await this.readIndex());
  }

  /**
   * Resolves a tag (searched in index.json and nested indexes; exactly one target required, else
   * OCI_TAG_AMBIGUOUS) or, when no tag matches, a digest of a manifest stored in the layout.
   */
  async resolve(reference: string, _opts?: TransferOptions): Promise<Descriptor> {
    const index = await this.readIndex();
    const matches = new Map<string, Descriptor>();
    await this.findTag(index.manifests, reference, matches, new Set(), 0);
    if (matches.size > 1) {
      throw new MosError({
        code: 'OCI_TAG_AMBIGUOUS',
        subject: `${this.dir}:${reference}`,
        message: `tag names ${matches.size} different manifests: ${[...matches.keys()].join(', ')}`,
        hint: 'remove the extra entries from index.json (or re-tag), then retry',
      });
    }
    const [found] = matches.values();
    if (found) return found;
    if (isDigest(reference)) return this.resolveDigest(index, reference);
    throw new MosError({
      code: 'OCI_TAG_UNKNOWN',
      subject: `${this.dir}:${reference}`,
      message: 'no such tag in the layout',
      hint: `tags present: ${layoutTags(index).slice(0, 10).map((t) => t.tag).join(', ') || '(none)'}`,
    });
  }

  /** Reads a manifest/index/config whole (at most MAX_MANIFEST_BYTES), verified against `desc`. */
  async fetchBytes(desc: Descriptor, _opts?: TransferOptions): Promise<Uint8Array> {
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject: desc.digest, message: `${desc.size} bytes is more than the ${MAX_MANIFEST_BYTES} read whole` });
    }
    const path = this.blobPath(desc.digest);
    let bytes: Buffer;
    try {
      // A blob is a regular file inside the layout: a symlink could point anywhere and change later.
      bytes = await readFileLimited(path, desc.size, { noFollow: true });
    } catch (e) {
      throw this.readError(e, desc, path);
    }
    verifyBytes(bytes, desc, path);
    return bytes;
  }

  /** Streams a blob (from `opts.offset`), verified against `desc` while it is read. */
  fetchBlob(desc: Descriptor, opts?: FetchBlobOptions): AsyncIterable<Uint8Array> {
    const offset = opts?.offset ?? 0;
    const path = this.blobPath(desc.digest);
    const store = this;
    async function* read(): AsyncGenerator<Uint8Array> {
      let opened: Awaited<ReturnType<typeof openRegular>>;
      try {
        opened = await openRegular(path, { noFollow: true });
      } catch (e) {
        throw store.readError(e, desc, path);
      }
      // The stream owns the handle from here and closes it at the end or on an error.
      yield* opened.fh.createReadStream({ highWaterMark: 1024 * 1024, start: offset }) as AsyncIterable<Buffer>;
    }
    return verifiedFrom(read(), desc, offset, path, opts?.sizeOnly);
  }

  /** True when the blob file is present with the descriptor's size (fsck re-hashes; this does not). */
  async exists(desc: Descriptor, _opts?: TransferOptions): Promise<boolean> {
    return (await blobSize(this.dir, desc.digest)) === desc.size;
  }

  /**
   * Stores a blob (verified; temp + fsync + rename). A present blob is not read again. Given a function
   * of the offset, a download a killed process left in `ingest/` is resumed (see `writeBlob`).
   */
  async pushBlob(desc: Descriptor, content: BlobContent, opts?: TransferOptions): Promise<void> {
    if (await this.exists(desc)) return;
    await writeBlob(this.dir, desc, content, { signal: opts?.signal, log: opts?.log ?? this.log });
  }

  /** Stores manifest/index bytes exactly as given (verified), then tags them if `tag` is set. */
  async pushManifest(desc: Descriptor, bytes: Uint8Array, opts?: TransferOptions & { readonly tag?: string }): Promise<void> {
    verifyBytes(bytes, desc);
    if (opts?.tag !== undefined) validateTag(opts.tag);
    if (!(await this.exists(desc))) await writeBlob(this.dir, desc, single(bytes), { signal: opts?.signal });
    if (opts?.tag !== undefined) await this.tag(desc, opts.tag);
  }

  /** Points `tag` at `desc` (replacing any entry with that tag). The manifest must be stored already. */
  async tag(desc: Descriptor, tag: string, _opts?: TransferOptions): Promise<void> {
    validateTag(tag);
    if (!(await this.exists(desc))) {
      throw new MosError({ code: 'OCI_MANIFEST_UNKNOWN', subject: desc.digest, message: `cannot tag ${tag}: the manifest is not in ${this.dir}`, hint: 'copy the image first' });
    }
    await this.updateIndex((idx) => withTag(idx, desc, tag));
    this.log.debug('tagged', { dir: this.dir, tag, digest: desc.digest });
  }

  /**
   * Points several tags at once, in one index.json write: a writer that copies many images tags them
   * all only when every one is complete, so a failure half-way leaves no index entry behind.
   */
  async tagAll(entries: readonly { readonly desc: Descriptor; readonly tag: string }[]): Promise<void> {
    for (const e of entries) {
      validateTag(e.tag);
      if (!(await this.exists(e.desc))) {
        throw new MosError({ code: 'OCI_MANIFEST_UNKNOWN', subject: e.desc.digest, message: `cannot tag ${e.tag}: the manifest is not in ${this.dir}`, hint: 'copy the image first' });
      }
    }
    if (entries.length === 0) return;
    await this.updateIndex((idx) => entries.reduce((acc, e) => withTag(acc, e.desc, e.tag), idx));
  }

  /** Removes every index.json entry tagged `tag`; false when there was none. Blobs stay until gc. */
  async untag(tag: string): Promise<boolean> {
    let removed = 0;
    await this.updateIndex((idx) => {
      const r = withoutTag(idx, tag);
      removed = r.removed;
      return r.index;
    });
    return removed > 0;
  }

  /** Deletes one blob file (gc's sweep); absent is fine. */
  async removeBlob(digest: Digest): Promise<void> {
    const path = this.blobPath(digest);
    try {
      await rm(path, { force: true });
    } catch (e) {
      throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot remove: ${describeSystemError(e)}`, cause: e });
    }
  }

  // Writers in this process queue here first (so they don't each poll the flock while a sibling holds
  // it), then take the cross-process flock.
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      const lock = await acquireLock(join(this.dir, LOCK_FILE), { wait: true });
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async findTag(list: readonly Descriptor[], tag: string, out: Map<string, Descriptor>, seen: Set<string>, depth: number): Promise<void> {
    for (const d of list) {
      if (tagOf(d) === tag) out.set(d.digest, d);
      if (!isIndexType(d.mediaType) || depth >= MAX_NESTING || seen.has(d.digest)) continue;
      seen.add(d.digest);
      let children: Descriptor[];
      try {
        children = childrenOf(d, await this.fetchBytes(d));
      } catch (e) {
        this.log.warn('skipping unreadable nested index', { digest: d.digest, error: (e as Error).message });
        continue;
      }
      await this.findTag(children, tag, out, seen, depth + 1);
    }
  }

  private async resolveDigest(index: LayoutIndex, digest: Digest): Promise<Descriptor> {
    const listed = index.manifests.find((d) => d.digest === digest);
    if (listed) return listed;
    const size = await blobSize(this.dir, digest);
    if (size === undefined) {
      throw new MosError({ code: 'OCI_MANIFEST_UNKNOWN', subject: `${this.dir}@${digest}`, message: 'no such manifest in the layout' });
    }
    if (size > MAX_MANIFEST_BYTES) {
      throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject: digest, message: `${size} bytes: too large for a manifest` });
    }
    const probe = { mediaType: 'application/octet-stream', digest, size };
    const bytes = await this.fetchBytes(probe);
    return { mediaType: sniffManifestType(bytes, digest), digest, size };
  }

  // A blob that cannot be read as a regular file of the right size: absent, a symlink or a device, too big.
  private readError(e: unknown, desc: Descriptor, path: string): unknown {
    if (!(e instanceof MosError)) return e;
    if (e.code === 'NOT_FOUND') return this.unknown(desc, e);
    if (e.code !== 'INPUT_INVALID') return e;
    if (/bytes, more than|grew past/.test(e.message)) {
      return new MosError({ code: 'OCI_SIZE_MISMATCH', subject: path, message: `blob is larger than its descriptor's ${desc.size} bytes`, hint: 'run mosctl fsck', cause: e });
    }
    return new MosError({ code: 'OCI_BLOB_CORRUPT', subject: path, message: `blob ${e.message}`, hint: 'blobs must be regular files inside the layout; run mosctl fsck', cause: e });
  }

  private unknown(desc: Descriptor, cause?: unknown): MosError {
    return new MosError({ code: 'OCI_BLOB_UNKNOWN', subject: desc.digest, message: `blob is not in ${this.dir}`, hint: 'copy the image again, or run mosctl fsck', cause });
  }
}

async function* single(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
