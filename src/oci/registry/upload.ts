import { MosError, isMosError, isTag, sha256Digest, type Digest } from '../../base/index.js';
import { MAX_MANIFEST_BYTES, OCI_INDEX } from '../media-types.js';
import { parseImageIndex } from '../documents.js';
import { parseJsonObject } from '../documents.js';
import type { Descriptor, ImageIndex, TransferOptions } from '../types.js';
import { verified, verifyBytes } from '../verify.js';
import { fallbackTag } from './referrers.js';
import { redactUrl, responseError } from './errors.js';
import { mediaTypeOfBody, type RepositoryHandle } from './handle.js';
import { discard, type Exchange } from './transport.js';

/** Options of `pushBlob`. */
export interface PushBlobOptions extends TransferOptions {
  /** A repository of the same registry that may hold the blob: try a cross-repository mount first. */
  readonly mountFrom?: string;
}

/** Appends `digest=<d>` to an upload Location, keeping its query exactly as the registry wrote it. */
export function withDigest(location: string, digest: Digest): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/** Re-slices a stream into buffers of exactly `size` bytes (the last one shorter). Memory: one buffer. */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buf = Buffer.allocUnsafe(size);
  let n = 0;
  for await (const chunk of source) {
    let off = 0;
    while (off < chunk.byteLength) {
      const take = Math.min(size - n, chunk.byteLength - off);
      buf.set(chunk.subarray(off, off + take), n);
      n += take;
      off += take;
      if (n === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        n = 0;
      }
    }
  }
  if (n > 0) yield buf.subarray(0, n);
}

/** The Location of an upload response resolved against the request URL (query kept), or a protocol error. */
function locationOf(ex: Exchange, what: string): string {
  const loc = ex.res.headers.get('location');
  if (!loc) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(ex.url), message: `${what}: response has no Location` });
  return new URL(loc, ex.url).href;
}

/** See `RepositoryHandle.pushBlob`. */
export async function pushBlob(repo: RepositoryHandle, desc: Descriptor, content: AsyncIterable<Uint8Array>, opts: PushBlobOptions): Promise<void> {
  const t = repo.transport;
  const signal = opts.signal;
  const what = `upload blob ${repo.display}@${desc.digest}`;
  if (await repo.exists(desc, opts)) return;
  let start: Exchange;
  if (opts.mountFrom !== undefined && opts.mountFrom !== repo.name) {
    const url = `${repo.path('blobs', 'uploads/')}?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(opts.mountFrom)}`;
    start = await t.request({ method: 'POST', url, scopes: [...repo.scope('push'), `repository:${opts.mountFrom}:pull`], headers: { 'content-length': '0' }, what, signal });
    if (start.res.status === 201) {
      await discard(start);
      opts.log?.debug('blob mounted from another repository', { digest: desc.digest, from: opts.mountFrom });
      return;
    }
  } else {
    start = await t.request({ method: 'POST', url: repo.path('blobs', 'uploads/'), scopes: repo.scope('push'), headers: { 'content-length': '0' }, what, signal });
  }
  if (start.res.status !== 202) throw await responseError(start.res, start.url, what);
  let location = locationOf(start, what);
  await discard(start);
  try {
    const source = verified(content, desc, `${repo.display}@${desc.digest}`);
    const octet = { 'content-type': 'application/octet-stream' };
    let body: Uint8Array | undefined;
    if (desc.size <= repo.opts.chunkSize) {
      // Monolithic: one buffer (≤ chunkSize) so a retry or a redirect can resend it.
      const parts: Uint8Array[] = [];
      for await (const c of source) parts.push(c);
      body = Buffer.concat(parts);
    } else {
      let offset = 0;
      for await (const chunk of rechunk(source, repo.opts.chunkSize)) {
        // distribution-spec: Content-Range is inclusive and has no "bytes " prefix.
        const headers = { ...octet, 'content-range': `${offset}-${offset + chunk.byteLength - 1}` };
        const ex = await t.request({ method: 'PATCH', url: location, scopes: repo.scope('push'), headers, body: chunk, retry: false, what, signal });
        if (ex.res.status !== 202) throw await responseError(ex.res, ex.url, `${what} (chunk at ${offset})`);
        location = locationOf(ex, what);
        await discard(ex);
        offset += chunk.byteLength;
        repo.stats.blobBytesPushed += chunk.byteLength;
      }
    }
    const ex = await t.request({ method: 'PUT', url: withDigest(location, desc.digest), scopes: repo.scope('push'), headers: octet, body: body ?? new Uint8Array(0), retry: false, what, signal });
    if (ex.res.status !== 201) throw await responseError(ex.res, ex.url, what);
    checkDigestHeader(ex, desc.digest, what);
    await discard(ex);
    if (body) repo.stats.blobBytesPushed += body.byteLength;
  } catch (e) {
    // Cancel the session so the registry drops the partial upload; failures here change nothing.
    await t
      .request({ method: 'DELETE', url: location, scopes: repo.scope('push'), retry: false, what: 'cancel upload' })
      .then(discard)
      .catch(() => {});
    throw e;
  }
}

function checkDigestHeader(ex: Exchange, digest: Digest, what: string): void {
  const got = ex.res.headers.get('docker-content-digest');
  if (got && got !== digest) {
    throw new MosError({ code: 'OCI_DIGEST_MISMATCH', subject: redactUrl(ex.url), message: `${what}: registry stored ${got}, we sent ${digest}` });
  }
}

/** See `RepositoryHandle.pushManifest`. */
export async function pushManifest(
  repo: RepositoryHandle,
  desc: Descriptor,
  bytes: Uint8Array,
  opts: TransferOptions & { readonly tag?: string; readonly skipSubject?: boolean },
): Promise<void> {
  const subject = `${repo.display}@${desc.digest}`;
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject, message: `manifest of ${bytes.byteLength} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit` });
  }
  verifyBytes(bytes, desc, subject);
  if (opts.tag !== undefined && !isTag(opts.tag)) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `${repo.display}:${opts.tag}`, message: `"${opts.tag}" is not a valid tag` });
  }
  const bodyType = mediaTypeOfBody(bytes, subject);
  if (bodyType !== undefined && bodyType !== desc.mediaType) {
    throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: `descriptor says ${desc.mediaType}, the manifest's mediaType is ${bodyType}` });
  }
  const what = `push manifest ${repo.display}${opts.tag !== undefined ? `:${opts.tag}` : `@${desc.digest}`}`;
  const ex = await repo.transport.request({
    method: 'PUT',
    url: repo.path('manifests', opts.tag ?? desc.digest),
    scopes: repo.scope('push'),
    headers: { 'content-type': desc.mediaType },
    body: bytes,
    what,
    signal: opts.signal,
  });
  if (ex.res.status !== 201 && ex.res.status !== 200 && ex.res.status !== 202) throw await responseError(ex.res, ex.url, what);
  checkDigestHeader(ex, desc.digest, what);
  const ociSubject = ex.res.headers.get('oci-subject');
  await discard(ex);
  repo.remember(desc.digest, bytes, desc.mediaType);
  if (opts.skipSubject) return;
  const doc = parseJsonObject(bytes, subject) as { subject?: Descriptor; artifactType?: string; config?: Descriptor; annotations?: Record<string, string> };
  if (!doc.subject || typeof doc.subject.digest !== 'string' || ociSubject) return;
  const entry: Descriptor = {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    ...(doc.artifactType ?? doc.config?.mediaType ? { artifactType: doc.artifactType ?? doc.config?.mediaType } : {}),
    ...(doc.annotations ? { annotations: doc.annotations } : {}),
  };
  await updateFallbackIndex(repo, doc.subject.digest, entry, opts);
}

// Writers of one fallback tag within this process run one after another (2.8.2 ignores If-Match).
const chains = new Map<string, Promise<void>>();

async function updateFallbackIndex(repo: RepositoryHandle, subject: Digest, entry: Descriptor, opts: TransferOptions): Promise<void> {
  const tag = fallbackTag(subject);
  const key = `${repo.host}/${repo.name}:${tag}`;
  const prev = chains.get(key) ?? Promise.resolve();
  const next = prev.catch(() => {}).then(() => readModifyWrite(repo, tag, entry, opts));
  chains.set(key, next);
  try {
    await next;
  } finally {
    if (chains.get(key) === next) chains.delete(key);
  }
}

async function readModifyWrite(repo: RepositoryHandle, tag: string, entry: Descriptor, opts: TransferOptions): Promise<void> {
  let index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  try {
    const current = await repo.fetchManifest(tag, opts);
    if (current.descriptor.mediaType !== OCI_INDEX) {
      throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: `${repo.display}:${tag}`, message: `referrers fallback tag holds ${current.descriptor.mediaType}, not an image index`, hint: 'delete or fix that tag, then push again' });
    }
    try {
      index = parseImageIndex(current.bytes, `${repo.display}:${tag}`);
    } catch (e) {
      if (!isMosError(e, 'OCI_MANIFEST_INVALID')) throw e;
      throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: `${repo.display}:${tag}`, message: `referrers fallback index: ${e.message}`, hint: 'delete or fix that tag, then push again', cause: e });
    }
  } catch (e) {
    if (!isMosError(e, 'OCI_TAG_UNKNOWN')) throw e;
  }
  if (index.manifests.some((d) => d.digest === entry.digest)) return;
  const bytes = new TextEncoder().encode(JSON.stringify({ ...index, manifests: [...index.manifests, entry] }));
  await pushManifest(repo, { mediaType: OCI_INDEX, digest: sha256Digest(bytes), size: bytes.byteLength }, bytes, { ...opts, tag, skipSubject: true });
}
