import type { Digest, OnProgress, Logger } from '../base/index.js';

/** An OCI content descriptor (image-spec descriptor.md). Sizes and digests are attacker-controlled until verified. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
  readonly platform?: Platform;
  readonly urls?: readonly string[];
  /** base64 of the content, when embedded. */
  readonly data?: string;
}

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
  readonly 'os.version'?: string;
  readonly 'os.features'?: readonly string[];
}

/** An OCI (or Docker schema 2) image manifest. */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An OCI image index (or Docker manifest list). */
export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Options every fetch/push accepts. */
export interface TransferOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** Options of `fetchBlob`. */
export interface FetchBlobOptions extends TransferOptions {
  /** Start at this byte (0 by default). */
  readonly offset?: number;
  /**
   * Check only the size here: the caller hashes every byte itself (a `ContentTarget` writing the blob
   * always does), so the digest is computed once, not twice.
   */
  readonly sizeOnly?: boolean;
}

/**
 * A blob's bytes for `pushBlob`: a stream, or a function giving the stream from a byte offset, which
 * lets a store resume a download a killed process left (it re-hashes what it has, then asks for the rest).
 */
export type BlobContent = AsyncIterable<Uint8Array> | ((offset: number) => AsyncIterable<Uint8Array>);

/**
 * Read side of a content store (registry repository or OCI layout). Every read is verified against the
 * descriptor: size and digest checked while streaming; the stream throws at the first excess byte.
 */
export interface ContentSource {
  /** Resolves a tag, or a digest string, to the descriptor of a manifest or index. OCI_TAG_UNKNOWN if absent. */
  resolve(reference: string, opts?: TransferOptions): Promise<Descriptor>;
  /** Reads a manifest/index/config whole (capped at MAX_MANIFEST_BYTES), verified against `desc`. */
  fetchBytes(desc: Descriptor, opts?: TransferOptions): Promise<Uint8Array>;
  /**
   * Streams a blob, verified against `desc`. With `offset`, streams the bytes from that offset on (a
   * resumed download): the size is still checked, the digest is then the store's check, since only it
   * holds the bytes before `offset`.
   */
  fetchBlob(desc: Descriptor, opts?: FetchBlobOptions): AsyncIterable<Uint8Array>;
  /** True when the content is present (for a layout: present and named by its digest). */
  exists(desc: Descriptor, opts?: TransferOptions): Promise<boolean>;
}

/** Write side of a content store. Writes are verified and idempotent; nothing unverified becomes visible. */
export interface ContentTarget {
  exists(desc: Descriptor, opts?: TransferOptions): Promise<boolean>;
  /** Stores a blob from a stream; throws OCI_DIGEST_MISMATCH / OCI_SIZE_MISMATCH and stores nothing on a mismatch. */
  pushBlob(desc: Descriptor, content: BlobContent, opts?: TransferOptions): Promise<void>;
  /** Stores a manifest or index from its exact bytes (never re-serialized), optionally tagging it. */
  pushManifest(desc: Descriptor, bytes: Uint8Array, opts?: TransferOptions & { readonly tag?: string }): Promise<void>;
  /** Points `tag` at an already stored manifest. */
  tag(desc: Descriptor, tag: string, opts?: TransferOptions): Promise<void>;
}

/** A store that can be both read and written (a layout, a registry repository). */
export interface ContentStore extends ContentSource, ContentTarget {}

export type { Reference } from '../base/index.js';

/** A registry repository as pulls read it: in this process, through the downloader, or through mirrors. */
export interface RegistryReader extends ContentStore {
  /** `host/name` for messages (never with credentials). */
  readonly display: string;
  /** Manifests whose `subject` is `subject` (referrers API, else the `sha256-<hex>` fallback tag). */
  referrers(subject: Descriptor, opts?: TransferOptions & { readonly artifactType?: string }): Promise<Descriptor[]>;
}

/** True for stores that answer `referrers` themselves (registries), false for layouts. */
export function isRegistryReader(s: ContentStore): s is RegistryReader {
  return typeof (s as Partial<RegistryReader>).referrers === 'function';
}
