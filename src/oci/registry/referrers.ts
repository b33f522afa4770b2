import { MosError, isMosError, splitDigest, type Digest } from '../../base/index.js';
import { MAX_MANIFEST_BYTES, OCI_INDEX } from '../media-types.js';
import { parseImageIndex } from '../documents.js';
import type { Descriptor, ImageIndex, TransferOptions } from '../types.js';
import { redactUrl, responseError } from './errors.js';
import { nextLink } from './headers.js';
import type { RepositoryHandle } from './handle.js';
import { discard } from './transport.js';

/** Options of `referrers()`. */
export interface ReferrersOptions extends TransferOptions {
  /** Only referrers with this artifactType. */
  readonly artifactType?: string;
}

/** Bound on pages followed (referrers and tag lists), against a registry linking in circles. */
const MAX_PAGES = 1000;

/**
 * The referrers fallback tag of a digest (distribution-spec §"Referrers Tag Schema"):
 * `<alg truncated to 32>-<encoded truncated to 64>`, characters outside the tag charset as `-`.
 */
export function fallbackTag(digest: Digest): string {
  const { algorithm, hex } = splitDigest(digest);
  const clean = (s: string) => s.replace(/[^a-zA-Z0-9._-]/g, '-');
  return `${clean(algorithm.slice(0, 32))}-${clean(hex.slice(0, 64))}`;
}

// A registry's reply, not a stored document: a malformed one is the registry's protocol error.
function parseIndex(bytes: Uint8Array, subject: string): ImageIndex {
  try {
    return parseImageIndex(bytes, subject);
  } catch (e) {
    if (!isMosError(e, 'OCI_MANIFEST_INVALID')) throw e;
    throw new MosError({ code: 'REGISTRY_PROTOCOL', subject, message: `referrers response is not an image index: ${e.message}`, cause: e });
  }
}

/** See `RepositoryHandle.referrers`. */
export async function referrers(repo: RepositoryHandle, digest: Digest, opts: ReferrersOptions): Promise<Descriptor[]> {
  const t = repo.transport;
  const what = `list referrers of ${repo.display}@${digest}`;
  let url: string | undefined = repo.path('referrers', digest) + (opts.artifactType ? `?artifactType=${encodeURIComponent(opts.artifactType)}` : '');
  const found: Descriptor[] = [];
  let filtered = true;
  for (let page = 0; url !== undefined; page++) {
    if (page >= MAX_PAGES) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: `${what}: more than ${MAX_PAGES} pages` });
    const ex = await t.request({ method: 'GET', url, scopes: repo.scope('pull'), headers: { accept: OCI_INDEX }, what, signal: opts.signal });
    if (ex.res.status === 404 && page === 0) {
      // No referrers API (distribution 2.8): the registry MUST NOT 404 here if it had one.
      await discard(ex);
      return fromFallbackTag(repo, digest, opts);
    }
    if (ex.res.status !== 200) throw await responseError(ex.res, ex.url, what);
    const applied = (ex.res.headers.get('oci-filters-applied') ?? '').split(',').map((s) => s.trim());
    if (opts.artifactType && !applied.includes('artifactType')) filtered = false;
    const link = nextLink(ex.res.headers.get('link'));
    const subject = redactUrl(ex.url);
    const index = parseIndex(await t.readCapped(ex, MAX_MANIFEST_BYTES, what, subject), subject);
    found.push(...index.manifests);
    url = link === undefined ? undefined : new URL(link, ex.url).href;
  }
  return dedupe(filtered ? found : found.filter((d) => d.artifactType === opts.artifactType));
}

async function fromFallbackTag(repo: RepositoryHandle, digest: Digest, opts: ReferrersOptions): Promise<Descriptor[]> {
  const tag = fallbackTag(digest);
  let bytes: Uint8Array;
  try {
    bytes = (await repo.fetchManifest(tag, opts)).bytes;
  } catch (e) {
    if (isMosError(e, 'OCI_TAG_UNKNOWN')) return [];
    throw e;
  }
  const index = parseIndex(bytes, `${repo.display}:${tag}`);
  return dedupe(opts.artifactType ? index.manifests.filter((d) => d.artifactType === opts.artifactType) : [...index.manifests]);
}

function dedupe(ds: readonly Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => (seen.has(d.digest) ? false : (seen.add(d.digest), true)));
}

/** See `RepositoryHandle.listTags`. */
export async function listTags(repo: RepositoryHandle, opts: TransferOptions): Promise<string[]> {
  const what = `list tags of ${repo.display}`;
  const tags: string[] = [];
  let url: string | undefined = repo.path('tags', 'list');
  for (let page = 0; url !== undefined; page++) {
    if (page >= MAX_PAGES) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: `${what}: more than ${MAX_PAGES} pages` });
    const ex = await repo.transport.request({ method: 'GET', url, scopes: repo.scope('pull'), what, signal: opts.signal });
    if (ex.res.status !== 200) throw await responseError(ex.res, ex.url, what, { 404: 'OCI_MANIFEST_UNKNOWN' });
    const link = nextLink(ex.res.headers.get('link'));
    const subject = redactUrl(ex.url);
    const bytes = await repo.transport.readCapped(ex, MAX_MANIFEST_BYTES, what, subject);
    let doc: { tags?: unknown };
    try {
      doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { tags?: unknown };
    } catch {
      throw new MosError({ code: 'REGISTRY_PROTOCOL', subject, message: 'tag list is not JSON' });
    }
    if (Array.isArray(doc.tags)) tags.push(...doc.tags.filter((x): x is string => typeof x === 'string'));
    url = link === undefined ? undefined : new URL(link, ex.url).href;
  }
  return tags;
}
