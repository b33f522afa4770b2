import { MosError, formatReference, parseReference, type Logger, type OnProgress } from '../base/index.js';
import {
  childrenOf, copy, hostPlatform, isIndexType, openLayout, openReference,
  type CopyResult, type Descriptor, type OpenedReference, type Platform, type RegistryAccess,
} from '../oci/index.js';

/** Options of `copyImage` (`mosb image copy SRC DST`). */
export interface CopyImageOptions extends RegistryAccess {
  /** `[docker://]host/name[:tag][@digest]` or `oci:DIR[:TAG]`. */
  readonly src: string;
  readonly dst: string;
  /** From an index, copy only this platform's manifest (default: the host's, like skopeo). */
  readonly platform?: Platform;
  /** Copy a whole index with every platform instead. */
  readonly all?: boolean;
  /** Parallel blob transfers; default 4. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** What `copyImage` did, as `--json` prints it. */
export interface CopyImageResult extends CopyResult {
  readonly src: string;
  readonly dst: string;
}

/**
 * Copies one image between registries and layouts (like `skopeo copy`): verified blobs, exact
 * manifest bytes, nothing transferred that the destination has. A source without tag or digest means
 * `latest` in a registry, or the single image of a layout; a layout destination without a tag takes
 * the source's tag.
 */
export async function copyImage(opts: CopyImageOptions): Promise<CopyImageResult> {
  const access = { ...opts, ...(opts.log ? { log: opts.log } : {}) };
  const src = await openReference(opts.src, access);
  // Parse the destination before creating anything, so a bad DEST leaves no directory behind.
  const dstRef = parseReference(opts.dst);
  const reference = src.reference ?? (await defaultReference(src));
  const tag = dstRef.tag ?? (dstRef.kind === 'layout' && dstRef.digest === undefined ? (src.ref.tag ?? 'latest') : undefined);
  if (dstRef.digest !== undefined && src.ref.digest !== undefined && dstRef.digest !== src.ref.digest) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: opts.dst, message: `destination digest differs from the source's ${src.ref.digest}` });
  }
  // Resolve the source before the destination is created: a missing image leaves nothing behind.
  const root = await src.store.resolve(reference, opts.signal ? { signal: opts.signal } : {});
  const dst = await openReference(opts.dst, { ...access, create: true });
  const result = await copy({
    src: src.store,
    dst: dst.store,
    reference: root,
    ...(tag !== undefined ? { tag } : {}),
    ...(opts.all ? {} : { platform: opts.platform ?? hostPlatform() }),
    ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  if (dstRef.digest !== undefined && result.descriptor.digest !== dstRef.digest) {
    throw new MosError({ code: 'OCI_DIGEST_MISMATCH', subject: opts.dst, message: `copied ${result.descriptor.digest}, not the digest the destination names` });
  }
  return { src: formatReference(src.ref), dst: formatReference(dst.ref), ...result };
}

/** Options of `inspectImage` (`mosb image inspect REF`). */
export type InspectImageOptions = RegistryAccess & { readonly ref: string; readonly signal?: AbortSignal; readonly log?: Logger };

/** A manifest or index and, for a manifest, a summary of its config. */
export interface InspectImageResult {
  readonly reference: string;
  readonly descriptor: Descriptor;
  /** The exact manifest bytes (what `--raw` prints). */
  readonly raw: string;
  readonly manifests?: readonly Descriptor[];
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
  readonly architecture?: string;
  readonly os?: string;
  readonly created?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Reads a manifest (verified) and its config; changes nothing anywhere. */
export async function inspectImage(opts: InspectImageOptions): Promise<InspectImageResult> {
  const opened = await openReference(opts.ref, { ...opts, create: false });
  const t = opts.signal ? { signal: opts.signal } : {};
  const reference = opened.reference ?? (await defaultReference(opened));
  const desc = await opened.store.resolve(reference, t);
  const bytes = await opened.store.fetchBytes(desc, t);
  const raw = Buffer.from(bytes).toString('utf8');
  const doc = JSON.parse(raw) as { annotations?: Record<string, string> };
  const base = { reference: formatReference(opened.ref), descriptor: plain(desc), raw, ...(doc.annotations ? { annotations: doc.annotations } : {}) };
  const children = childrenOf(desc, bytes);
  if (isIndexType(desc.mediaType)) return { ...base, manifests: children };
  const [config, ...layers] = children;
  if (!config) return base;
  let summary: { architecture?: string; os?: string; created?: string; config?: { Labels?: Record<string, string> } } = {};
  if (config.mediaType.endsWith('json') && config.size <= 4 * 1024 * 1024) {
    try {
      summary = JSON.parse(Buffer.from(await opened.store.fetchBytes(config, t)).toString('utf8')) as typeof summary;
    } catch (e) {
      if (e instanceof MosError) throw e;
      summary = {}; // a config that is not JSON is summarised by its descriptor only
    }
  }
  return {
    ...base,
    config,
    layers,
    ...(typeof summary.architecture === 'string' ? { architecture: summary.architecture } : {}),
    ...(typeof summary.os === 'string' ? { os: summary.os } : {}),
    ...(typeof summary.created === 'string' ? { created: summary.created } : {}),
    ...(summary.config?.Labels ? { labels: summary.config.Labels } : {}),
  };
}

function plain(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.artifactType ? { artifactType: d.artifactType } : {}) };
}

// A reference without tag or digest: `latest` in a registry; in a layout, its only image.
async function defaultReference(opened: OpenedReference): Promise<string> {
  if (opened.ref.kind === 'registry') return 'latest';
  const store = opened.store as Awaited<ReturnType<typeof openLayout>>;
  const entries = (await store.readIndex()).manifests;
  const digests = [...new Set(entries.map((d) => d.digest))];
  if (digests.length === 1) return digests[0]!;
  throw new MosError({
    code: 'OCI_REFERENCE_INVALID',
    subject: formatReference(opened.ref),
    message: digests.length === 0 ? 'the layout holds no image' : `the layout holds ${digests.length} images; name one`,
    hint: 'write oci:DIR:TAG',
  });
}
