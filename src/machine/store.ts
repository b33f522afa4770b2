import { MosError, isMosError, type Logger } from '../base/index.js';
import type { InstallTarget } from '../manifest/index.js';
import { OCI_MANIFEST, openLayout, parseImageManifest, type Descriptor, type ImageManifest, type LayoutStore } from '../oci/index.js';
import { isSquashfsMediaType } from '../squashfs/index.js';
import { systemPaths } from './paths.js';

/** The store, created on first use. */
export async function openStore(root: string, log?: Logger): Promise<LayoutStore> {
  return openLayout(systemPaths(root).store, { create: true, ...(log ? { log } : {}) });
}

/** The store if it exists, else undefined (nothing is created: for readers and for checks before writing). */
export async function openExistingStore(root: string, log?: Logger): Promise<LayoutStore | undefined> {
  return openLayout(systemPaths(root).store, log ? { log } : {}).catch((e: unknown) => {
    if (isMosError(e, 'NOT_FOUND')) return undefined;
    throw e;
  });
}

/** The signed descriptor of a target's image manifest. */
export function targetDescriptor(t: InstallTarget): Descriptor {
  return { mediaType: OCI_MANIFEST, digest: t.digest as Descriptor['digest'], size: t.size };
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
  const m = parseImageManifest(bytes, subject);
  if (m.layers.length === 0) throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'the image has no layers' });
  const bad = m.layers.find((l) => !isSquashfsMediaType(l.mediaType));
  if (bad) {
    throw new MosError({
      code: 'ATOMFS_LAYER_UNSUPPORTED',
      subject,
      message: `layer ${bad.digest} has media type ${bad.mediaType}, not a squashfs layer`,
      hint: 'convert the image with mosb image build --from REF',
    });
  }
  return m;
}

/** Targets whose image is not complete in the store (manifest, config and every layer present). */
export async function incompleteImages(store: LayoutStore, targets: readonly InstallTarget[], gone: ReadonlySet<string> = new Set()): Promise<InstallTarget[]> {
  const out: InstallTarget[] = [];
  for (const t of targets) {
    const desc = targetDescriptor(t);
    // `gone`: blobs counted as absent (a repair's dry run: the corrupt ones it would remove).
    if (gone.has(desc.digest) || !(await hasImage(store, desc))) {
      out.push(t);
      continue;
    }
    const m = parseImageManifest(await store.fetchBytes(desc), `target ${t.service_name}`);
    for (const d of [m.config, ...m.layers]) {
      if (gone.has(d.digest) || !(await store.exists(d))) {
        out.push(t);
        break;
      }
    }
  }
  return out;
}
