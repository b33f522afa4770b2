import { isMosError, sha256Digest } from '../base/index.js';
import {
  OCI_INDEX, RegistryRepository, isRegistryReader, fallbackTag, parseImageIndex, verifyBytes,
  type ContentStore, type Descriptor, type ImageIndex,
} from '../oci/index.js';

/** mos's artifact types (reference/mos.md §4.1). */
export const INSTALL_ARTIFACT_TYPE = 'application/vnd.machine.install';
export const CERT_ARTIFACT_TYPE = 'application/vnd.machine.pubkeycrt';
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.machine.signature';
/** Target images live in this repository of the install manifest's registry, tagged by digest hex. */
export const TARGET_REPOSITORY = 'mos';

/**
 * Tag of a target image next to an install artifact: in a registry the repository `mos` with tag
 * `<hex>` (mos's convention); in an `oci:` layout (live CD, embedded default) the same layout with tag
 * `<hex>`, since one layout holds the install artifact, its referrers and every target image.
 */
export function targetTag(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/**
 * Referrers of `subject` with `artifactType` in any store: a registry's referrers API (or its
 * `sha256-<hex>` fallback tag), or, in a layout, the same fallback tag index. None → [].
 */
export async function listReferrers(store: ContentStore, subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
  if (isRegistryReader(store)) return store.referrers(subject, artifactType ? { artifactType } : {});
  const index = await readFallbackIndex(store, subject);
  return index.manifests.filter((d) => artifactType === undefined || d.artifactType === artifactType);
}

async function readFallbackIndex(store: ContentStore, subject: Descriptor): Promise<ImageIndex> {
  let desc: Descriptor;
  try {
    desc = await store.resolve(fallbackTag(subject.digest));
  } catch (e) {
    if (isMosError(e, 'OCI_TAG_UNKNOWN', 'OCI_MANIFEST_UNKNOWN', 'NOT_FOUND')) return { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
    throw e;
  }
  return parseImageIndex(await store.fetchBytes(desc), `referrers fallback tag ${fallbackTag(subject.digest)}`);
}

/**
 * Records `referrer` (a manifest whose `subject` is `subject`) where readers will find it. Registries
 * keep their own fallback index when pushing a manifest with a subject; a layout gets its
 * `sha256-<hex>` fallback index rewritten here (read-modify-write, skipped when already present).
 */
export async function addReferrer(store: ContentStore, subject: Descriptor, referrer: Descriptor): Promise<void> {
  if (store instanceof RegistryRepository) return;
  const current = await readFallbackIndex(store, subject);
  if (current.manifests.some((d) => d.digest === referrer.digest)) return;
  const next: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...current.manifests, referrer] };
  const bytes = new TextEncoder().encode(JSON.stringify(next));
  const desc: Descriptor = { mediaType: OCI_INDEX, digest: sha256Digest(bytes), size: bytes.byteLength };
  verifyBytes(bytes, desc);
  await store.pushManifest(desc, bytes, { tag: fallbackTag(subject.digest) });
}
