import { MosError, isDigest, isTag, sha256Digest, splitDigest, type Digest } from '../../base/index.js';
import { isManifestType } from '../graph.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '../media-types.js';
import type { BlobContent, ContentStore, Descriptor, FetchBlobOptions, Platform, TransferOptions } from '../types.js';
import { verifiedFrom, verifyBytes } from '../verify.js';
import { defaultAuthFiles, searchCredentials, type Credentials } from './credentials.js';
import { isRetriableNetworkError, networkError, redactUrl, responseError } from './errors.js';
import { mediaTypeOf } from './headers.js';
import { resolveOptions, type RegistryOptions, type ResolvedOptions } from './options.js';
import { resolvePlatform } from '../platform.js';
import { parseImageIndex } from '../documents.js';
import { listTags, referrers, type ReferrersOptions } from './referrers.js';
import { discard, Transport, type Exchange } from './transport.js';
import { pushBlob, pushManifest, type PushBlobOptions } from './upload.js';
import { mediaTypeOfBody, type FetchedManifest, type RepositoryHandle, type RepositoryStats } from './handle.js';

export type { FetchedManifest, RepositoryStats } from './handle.js';

const ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ');
const MANIFEST_CACHE_ENTRIES = 16;

/** Opens one repository of a registry; nothing is sent until the first call. */
export function openRepository(opts: RegistryOptions & { readonly host: string; readonly name: string }): RegistryRepository {
  return new RegistryRepository(opts.host, opts.name, resolveOptions(opts));
}

/**
 * One repository of an OCI distribution-spec registry, read and written through `ContentStore`. Every
 * read is verified (size and digest while streaming), manifests are capped at 4 MiB, blob reads resume
 * with `Range` after a reset, and at most `concurrency` blob downloads run at once.
 */
export class RegistryRepository implements ContentStore, RepositoryHandle {
  readonly stats: RepositoryStats = { blobBytesFetched: 0, manifestBytesFetched: 0, blobBytesPushed: 0, resumes: 0 };
  /** Parallel blob downloads this repository allows (callers may size their own pools with it). */
  readonly concurrency: number;
  /** @internal the HTTP layer, shared with the upload and referrers helpers. */
  readonly transport: Transport;
  /** @internal resolved options. */
  readonly opts: ResolvedOptions;
  private readonly cache = new Map<Digest, { readonly bytes: Uint8Array; readonly mediaType: string }>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    /** `host[:port]` as referenced (`docker.io` for Docker Hub). */
    readonly host: string,
    readonly name: string,
    opts: ResolvedOptions,
  ) {
    this.opts = opts;
    this.concurrency = opts.concurrency;
    const endpoint = host === 'docker.io' ? 'registry-1.docker.io' : host;
    let creds: Promise<Credentials | undefined> | undefined;
    const credentials = () => (creds ??= opts.credentials !== undefined ? Promise.resolve(opts.credentials ?? undefined) : searchCredentials(opts.authFile !== undefined ? [opts.authFile] : defaultAuthFiles(), host, name));
    this.transport = new Transport(endpoint, opts, credentials);
  }

  /** `/v2/<name>/<kind>/<ref>` (distribution-spec endpoints end-2 … end-8). */
  path(kind: 'manifests' | 'blobs' | 'referrers' | 'tags', ref = ''): string {
    return `/v2/${this.name}/${kind}/${ref}`;
  }

  /** Scope strings for pull or push on this repository. */
  scope(action: 'pull' | 'push'): string[] {
    return [`repository:${this.name}:${action === 'pull' ? 'pull' : 'pull,push'}`];
  }

  /** `host/name` for messages. */
  get display(): string {
    return `${this.host}/${this.name}`;
  }

  /** Resolves a tag or digest to the descriptor of the manifest or index it names (OCI_TAG_UNKNOWN if absent). */
  async resolve(reference: string, opts: TransferOptions = {}): Promise<Descriptor> {
    return (await this.fetchManifest(reference, opts)).descriptor;
  }

  /**
   * GETs a manifest or index by tag or digest with every supported Accept type: checks `Content-Type`
   * against the body's `mediaType`, hashes the exact bytes (verified when asked by digest), caps it at
   * 4 MiB. The bytes are kept in a small cache so the next `fetchBytes` does not fetch them again.
   */
  async fetchManifest(reference: string, opts: TransferOptions = {}): Promise<FetchedManifest> {
    const byDigest = isDigest(reference);
    if (!byDigest && !isTag(reference)) {
      throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `${this.display}:${reference}`, message: `"${reference}" is neither a tag nor a digest` });
    }
    if (byDigest) {
      // The cache keeps the media type the registry served: a manifest without a mediaType field
      // (skopeo pushes them so) must not come back typeless.
      const cached = this.cache.get(reference);
      if (cached) return { descriptor: describe(cached.bytes, cached.mediaType, reference), bytes: cached.bytes };
    }
    const what = `fetch manifest ${this.display}${byDigest ? '@' : ':'}${reference}`;
    const ex = await this.transport.request({ method: 'GET', url: this.path('manifests', reference), scopes: this.scope('pull'), headers: { accept: ACCEPT }, what, signal: opts.signal });
    if (ex.res.status !== 200) {
      throw await responseError(ex.res, ex.url, what, { 404: byDigest ? 'OCI_MANIFEST_UNKNOWN' : 'OCI_TAG_UNKNOWN' });
    }
    const subject = redactUrl(ex.url);
    const contentType = mediaTypeOf(ex.res.headers.get('content-type'));
    const headerDigest = ex.res.headers.get('docker-content-digest');
    const bytes = await this.transport.readCapped(ex, MAX_MANIFEST_BYTES, what, subject);
    this.stats.manifestBytesFetched += bytes.byteLength;
    const bodyType = mediaTypeOfBody(bytes, subject);
    const generic = contentType === undefined || contentType === 'application/json' || contentType === 'application/octet-stream' || contentType === 'text/plain';
    if (bodyType !== undefined && !generic && bodyType !== contentType) {
      throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: `Content-Type ${contentType} differs from the manifest's mediaType ${bodyType}`, hint: 'the registry served inconsistent content; nothing was stored' });
    }
    const mediaType = bodyType ?? (generic ? undefined : contentType);
    if (!mediaType) throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'manifest has no media type (no mediaType field, no usable Content-Type)' });
    let digest: Digest;
    if (byDigest) {
      verifyBytes(bytes, { mediaType, digest: reference, size: bytes.byteLength }, subject);
      digest = reference;
    } else {
      digest = sha256Digest(bytes);
      if (headerDigest && isDigest(headerDigest) && headerDigest.startsWith('sha256:') && headerDigest !== digest) {
        throw new MosError({ code: 'OCI_DIGEST_MISMATCH', subject, message: `content hashes to ${digest}, the registry says ${headerDigest}`, hint: 'the registry served corrupt content; nothing was stored' });
      }
    }
    this.remember(digest, bytes, mediaType);
    return { descriptor: { mediaType, digest, size: bytes.byteLength }, bytes };
  }

  /**
   * Resolves `reference` to an image manifest: an index is narrowed to `platform` (default the
   * options' platform, else the host's) with `resolvePlatform`, then fetched by digest.
   */
  async resolveImage(reference: string, opts: TransferOptions & { readonly platform?: Platform } = {}): Promise<FetchedManifest> {
    const top = await this.fetchManifest(reference, opts);
    if (!INDEX_MEDIA_TYPES.includes(top.descriptor.mediaType)) return top;
    const index = parseImageIndex(top.bytes, `${this.display}@${top.descriptor.digest}`);
    const platform = opts.platform ?? this.opts.platform;
    const chosen = resolvePlatform(index.manifests, ...(platform ? [platform] : []), `${this.display}@${top.descriptor.digest}`);
    const m = await this.fetchManifest(chosen.digest, opts);
    verifyBytes(m.bytes, chosen, `${this.display}@${chosen.digest}`);
    return m;
  }

  /** Reads a manifest, index or config whole, verified against `desc` and capped at 4 MiB. */
  async fetchBytes(desc: Descriptor, opts: TransferOptions = {}): Promise<Uint8Array> {
    const subject = `${this.display}@${desc.digest}`;
    if (desc.size > MAX_MANIFEST_BYTES || desc.size < 0) {
      throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject, message: `${desc.size} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit for documents read whole` });
    }
    if (isManifestType(desc.mediaType)) {
      const m = await this.fetchManifest(desc.digest, opts);
      verifyBytes(m.bytes, desc, subject);
      return m.bytes;
    }
    const parts: Uint8Array[] = [];
    for await (const chunk of this.fetchBlob(desc, opts)) parts.push(chunk);
    const bytes = new Uint8Array(Buffer.concat(parts));
    return bytes;
  }

  /**
   * Streams a blob, verified against `desc` (throws at the first excess byte, or at the end on a
   * size/digest mismatch). A connection reset mid-blob is resumed with `Range: bytes=<offset>-`, the
   * hash continuing over the bytes already passed on. Memory stays at one network chunk. With
   * `opts.offset` the blob is read from there (a resumed download; the store checks the digest).
   */
  fetchBlob(desc: Descriptor, opts: FetchBlobOptions = {}): AsyncIterable<Uint8Array> {
    const offset = opts.offset ?? 0;
    return verifiedFrom(this.rawBlob(desc, offset, opts), desc, offset, `${this.display}@${desc.digest}`, opts.sizeOnly);
  }

  private async *rawBlob(desc: Descriptor, start: number, opts: TransferOptions): AsyncGenerator<Uint8Array> {
    await this.acquire();
    try {
      const what = `fetch blob ${this.display}@${desc.digest}`;
      let offset = start;
      let resumes = 0;
      for (;;) {
        const ex = await this.blobGet(desc, offset, what, opts.signal);
        // A server ignoring Range answers 200 with the whole blob: skip what we already passed on.
        let skip = offset > 0 && ex.res.status === 200 ? offset : 0;
        try {
          for await (const chunk of this.transport.body(ex, what)) {
            this.stats.blobBytesFetched += chunk.byteLength;
            let c = chunk;
            if (skip > 0) {
              const n = Math.min(skip, c.byteLength);
              skip -= n;
              c = c.subarray(n);
              if (c.byteLength === 0) continue;
            }
            offset += c.byteLength;
            yield c;
          }
          return;
        } catch (e) {
          if (resumes < this.opts.retries && isRetriableNetworkError(e) && offset < desc.size) {
            resumes++;
            this.stats.resumes++;
            this.opts.log.debug('blob download interrupted; resuming', { digest: desc.digest, offset });
            continue;
          }
          throw networkError(e, ex.url, what);
        }
      }
    } finally {
      this.release();
    }
  }

  /** GET of a blob from `offset`, checking the status, `Content-Range` and `Docker-Content-Digest`. */
  private async blobGet(desc: Descriptor, offset: number, what: string, signal: AbortSignal | undefined): Promise<Exchange> {
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const ex = await this.transport.request({ method: 'GET', url: this.path('blobs', desc.digest), scopes: this.scope('pull'), headers, what, signal });
    const status = ex.res.status;
    if (status === 206 && offset > 0) {
      const m = /^bytes (\d+)-/.exec(ex.res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        await discard(ex);
        throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(ex.url), message: `${what}: asked for bytes from ${offset}, got Content-Range "${ex.res.headers.get('content-range') ?? ''}"` });
      }
    } else if (status !== 200) {
      throw await responseError(ex.res, ex.url, what, { 404: 'OCI_BLOB_UNKNOWN' });
    }
    const headerDigest = ex.res.headers.get('docker-content-digest');
    if (headerDigest && isDigest(headerDigest) && splitDigest(headerDigest).algorithm === splitDigest(desc.digest).algorithm && headerDigest !== desc.digest) {
      await discard(ex);
      throw new MosError({ code: 'OCI_DIGEST_MISMATCH', subject: redactUrl(ex.url), message: `registry serves ${headerDigest} for ${desc.digest}`, hint: 'the registry served other content; nothing was stored' });
    }
    return ex;
  }

  /** HEADs the manifest or blob: true if present, false on 404. */
  async exists(desc: Descriptor, opts: TransferOptions = {}): Promise<boolean> {
    const kind = isManifestType(desc.mediaType) ? 'manifests' : 'blobs';
    const what = `check ${this.display}@${desc.digest}`;
    const ex = await this.transport.request({ method: 'HEAD', url: this.path(kind, desc.digest), scopes: this.scope('pull'), headers: kind === 'manifests' ? { accept: ACCEPT } : {}, what, signal: opts.signal });
    if (ex.res.status === 200) {
      await discard(ex);
      return true;
    }
    if (ex.res.status === 404) {
      await discard(ex);
      return false;
    }
    throw await responseError(ex.res, ex.url, what);
  }

  /**
   * Uploads a blob unless the registry has it: a cross-repository mount first when `mountFrom` is
   * given, else one PUT for blobs up to `chunkSize` and PATCH chunks beyond. The content is verified
   * while it is read; on any failure the upload session is cancelled and nothing is committed.
   */
  pushBlob(desc: Descriptor, content: BlobContent, opts: PushBlobOptions = {}): Promise<void> {
    return pushBlob(this, desc, typeof content === 'function' ? content(0) : content, opts);
  }

  /**
   * PUTs a manifest or index from its exact bytes (verified against `desc`) under its digest, or under
   * `tag`. When it has a `subject` and the registry does not answer `OCI-Subject`, the `sha256-<hex>`
   * fallback tag index of the subject is updated (read-modify-write, serialised within this process).
   */
  pushManifest(desc: Descriptor, bytes: Uint8Array, opts: TransferOptions & { readonly tag?: string } = {}): Promise<void> {
    return pushManifest(this, desc, bytes, opts);
  }

  /** Points `tag` at a manifest already in the repository (the same bytes PUT under the tag). */
  async tag(desc: Descriptor, tag: string, opts: TransferOptions = {}): Promise<void> {
    const bytes = await this.fetchBytes(desc, opts);
    await pushManifest(this, desc, bytes, { ...opts, tag, skipSubject: true });
  }

  /**
   * Descriptors of the manifests whose `subject` is `subject`: the referrers API (artifactType filter,
   * applied client-side when the registry did not, `Link` pages followed), or on 404 the
   * `sha256-<hex>` fallback tag index. An empty list when there are none.
   */
  referrers(subject: Descriptor | Digest, opts: ReferrersOptions = {}): Promise<Descriptor[]> {
    return referrers(this, typeof subject === 'string' ? subject : subject.digest, opts);
  }

  /** Every tag of the repository (following `Link` pages). */
  listTags(opts: TransferOptions = {}): Promise<string[]> {
    return listTags(this, opts);
  }

  /** @internal keeps a manifest's bytes for a later fetch by digest. */
  remember(digest: Digest, bytes: Uint8Array, mediaType: string): void {
    this.cache.delete(digest);
    this.cache.set(digest, { bytes, mediaType });
    if (this.cache.size > MANIFEST_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
  }

  private async acquire(): Promise<void> {
    if (this.active >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}

function describe(bytes: Uint8Array, mediaType: string, digest: Digest): Descriptor {
  return { mediaType, digest, size: bytes.byteLength };
}
