import type { Digest } from '../../base/index.js';
import { parseJsonObject } from '../documents.js';
import type { Descriptor, TransferOptions } from '../types.js';
import type { ResolvedOptions } from './options.js';
import type { Transport } from './transport.js';

// What the referrers and upload halves of the client need of a repository. They take this interface,
// not the class, so the client's modules import one way: repository -> {referrers, upload} -> handle.

/** Counters a caller (the pull bench, progress summaries) can read at any time. */
export interface RepositoryStats {
  /** Body bytes received from `/blobs/` (layers and configs), resumed ranges included. */
  blobBytesFetched: number;
  /** Body bytes received from `/manifests/`. */
  manifestBytesFetched: number;
  /** Blob bytes sent in uploads. */
  blobBytesPushed: number;
  /** Blob reads resumed with `Range` after a broken connection. */
  resumes: number;
}

/** A fetched manifest or index: its descriptor (digest of the exact bytes) and the bytes. */
export interface FetchedManifest {
  readonly descriptor: Descriptor;
  readonly bytes: Uint8Array;
}

/** One repository of a registry, as the referrers and upload code use it (RegistryRepository is one). */
export interface RepositoryHandle {
  readonly host: string;
  readonly name: string;
  /** `host/name` for messages (never with credentials). */
  readonly display: string;
  readonly transport: Transport;
  readonly opts: ResolvedOptions;
  readonly stats: RepositoryStats;
  /** The URL path of an endpoint of this repository (distribution-spec §endpoints). */
  path(kind: 'manifests' | 'blobs' | 'referrers' | 'tags', ref?: string): string;
  /** The token scopes for `action` on this repository. */
  scope(action: 'pull' | 'push'): string[];
  fetchManifest(reference: string, opts?: TransferOptions): Promise<FetchedManifest>;
  exists(desc: Descriptor, opts?: TransferOptions): Promise<boolean>;
  /** Caches manifest bytes just pushed, so the next read needs no round trip. */
  remember(digest: Digest, bytes: Uint8Array, mediaType: string): void;
}

/** The `mediaType` field of a JSON manifest, or undefined; OCI_MANIFEST_INVALID when it is not JSON. */
export function mediaTypeOfBody(bytes: Uint8Array, subject?: string): string | undefined {
  const mt = parseJsonObject(bytes, subject ?? 'manifest')['mediaType'];
  return typeof mt === 'string' ? mt : undefined;
}
