import { MosError } from '../base/index.js';
import { parseImageIndex, parseImageManifest, parseJsonObject } from './documents.js';
import { DOCKER_MANIFEST, INDEX_MEDIA_TYPES, OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import type { Descriptor } from './types.js';

// Pure helpers for walking an OCI content graph (index -> manifests -> config + layers).

/** True when `mediaType` names a manifest or an index (a node with children), not a plain blob. */
export function isManifestType(mediaType: string): boolean {
  return mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST || INDEX_MEDIA_TYPES.includes(mediaType);
}

/** True when `mediaType` names an image index (or Docker manifest list). */
export function isIndexType(mediaType: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mediaType);
}

/**
 * The children of a manifest or index, in copy order (config before layers); a plain blob has none.
 * `subject` is not a child: referrers point at their subject, they do not own it.
 */
export function childrenOf(desc: Descriptor, bytes: Uint8Array): Descriptor[] {
  if (!isManifestType(desc.mediaType)) return [];
  const subject = desc.digest;
  const doc = isIndexType(desc.mediaType) ? parseImageIndex(bytes, subject) : parseImageManifest(bytes, subject);
  if (doc.mediaType !== undefined && doc.mediaType !== desc.mediaType) {
    throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: `mediaType ${JSON.stringify(doc.mediaType)} differs from the descriptor's ${desc.mediaType}` });
  }
  return 'manifests' in doc ? [...doc.manifests] : [doc.config, ...doc.layers];
}

/**
 * Guesses the media type of manifest bytes read without a descriptor (a digest reference into a
 * layout): the declared `mediaType`, else the shape (`manifests` = index, `config` + `layers` = manifest).
 */
export function sniffManifestType(bytes: Uint8Array, subject: string): string {
  const doc = parseJsonObject(bytes, subject);
  if (typeof doc['mediaType'] === 'string' && isManifestType(doc['mediaType'])) return doc['mediaType'];
  if (Array.isArray(doc['manifests'])) return OCI_INDEX;
  if (doc['config'] !== undefined && Array.isArray(doc['layers'])) return OCI_MANIFEST;
  throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'neither an image manifest nor an image index' });
}
