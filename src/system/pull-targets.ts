import { MosError, isMosError, type Logger, type OnProgress } from '../base/index.js';
import type { InstallTarget } from '../manifest/index.js';
import { OCI_MANIFEST, copy, openLayout, type Descriptor, type ImageManifest, type LayoutStore } from '../oci/index.js';
import { isSquashfsMediaType } from '../squashfs/index.js';
import type { FetchedInstall } from './fetch-install.js';
import { storeDir } from './gc.js';

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
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** The store, created on first use. */
export async function openStore(root: string, log?: Logger): Promise<LayoutStore> {
  return openLayout(storeDir(root), { create: true, ...(log ? { log } : {}) });
}

/** The signed descriptor of a target's image manifest. */
export function targetDescriptor(t: InstallTarget): Descriptor {
  return { mediaType: OCI_MANIFEST, digest: t.digest as Descriptor['digest'], size: t.size };
}

/**
 * Copies every target image into `<root>/atomfs-store/mos`, tagged by its full digest (mos's
 * convention). Two passes: first every image manifest is fetched by its SIGNED digest and size (so the
 * registry cannot substitute anything) and checked to be a squashfs image; only then are blobs copied,
 * each verified while it streams. Images already tagged in the store are not fetched at all.
 */
export async function pullTargets(opts: PullTargetsOptions): Promise<PullTargetsResult> {
  const store = await openStore(opts.root, opts.log);
  const t = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
  const todo: { target: InstallTarget; desc: Descriptor }[] = [];
  const present: string[] = [];
  for (const target of opts.targets) {
    const desc = targetDescriptor(target);
    if (await hasImage(store, desc)) {
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
    checkSquashfsImage(bytes, target);
    todo.push({ target, desc });
  }
  let blobBytes = 0;
  for (const { target, desc } of todo) {
    const { store: src } = opts.fetched.imageSource(target.digest);
    try {
      const r = await copy({ src, dst: store, reference: desc, tag: target.digest, ...t, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
      blobBytes += r.bytesCopied;
    } catch (e) {
      throw wrapTarget(e, target);
    }
  }
  return { present, pulled: todo.map((x) => x.target.service_name), blobBytes };
}

/** True when the store has the image tagged by its digest with the signed size. */
export async function hasImage(store: LayoutStore, desc: Descriptor): Promise<boolean> {
  try {
    const found = await store.resolve(desc.digest);
    return found.digest === desc.digest && found.size === desc.size && (await store.exists(desc));
  } catch (e) {
    if (isMosError(e, 'OCI_TAG_UNKNOWN', 'OCI_MANIFEST_UNKNOWN', 'OCI_BLOB_UNKNOWN', 'NOT_FOUND')) return false;
    throw e;
  }
}

/** Parses an image manifest and refuses anything atomfs cannot mount, naming the target. */
export function checkSquashfsImage(bytes: Uint8Array, target: InstallTarget): ImageManifest {
  const subject = `target ${target.service_name} (${target.digest})`;
  let m: ImageManifest | undefined;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8')) as ImageManifest;
  } catch {
    m = undefined;
  }
  if (!m || !Array.isArray(m.layers) || typeof m.config !== 'object') {
    throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'is not an OCI image manifest' });
  }
  if (m.layers.length === 0) throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'the image has no layers' });
  const bad = m.layers.find((l) => typeof l?.mediaType !== 'string' || !isSquashfsMediaType(l.mediaType));
  if (bad) {
    throw new MosError({
      code: 'ATOMFS_LAYER_UNSUPPORTED',
      subject,
      message: `layer ${String(bad.digest)} has media type ${String(bad.mediaType)}, not a squashfs layer`,
      hint: 'convert the image with mosb image build --from REF',
    });
  }
  return m;
}

function wrapTarget(e: unknown, target: InstallTarget): unknown {
  if (!isMosError(e)) return e;
  if (e.subject?.includes(target.service_name)) return e;
  return new MosError({ code: e.code, subject: `target ${target.service_name}: ${e.subject ?? target.digest}`, message: e.message, hint: e.hint, cause: e });
}
