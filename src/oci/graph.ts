import { MosError, isDigest } from '../base/index.js';
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
 * Validates one descriptor object (hostile input: every field type-checked) and returns it unchanged.
 * Throws OCI_MANIFEST_INVALID naming `subject`.
 */
export function parseDescriptor(v: unknown, subject: string): Descriptor {
  const bad = (message: string) => new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message });
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('descriptor is not an object');
  const d = v as Record<string, unknown>;
  if (typeof d['mediaType'] !== 'string' || d['mediaType'] === '') throw bad('mediaType is missing or not a string');
  if (!isDigest(d['digest'])) throw bad(`digest ${JSON.stringify(d['digest'])} is not sha256:<64 hex> or sha512:<128 hex>`);
  const size = d['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad(`size ${JSON.stringify(size)} is not a non-negative integer`);
  const ann = d['annotations'];
  if (ann !== undefined) {
    if (ann === null || typeof ann !== 'object' || Array.isArray(ann)) throw bad('annotations is not an object');
    for (const [k, val] of Object.entries(ann)) if (typeof val !== 'string') throw bad(`annotations.${k} is not a string`);
  }
  if (d['platform'] !== undefined) {
    const p = d['platform'] as Record<string, unknown> | null;
    if (p === null || typeof p !== 'object' || typeof p['architecture'] !== 'string' || typeof p['os'] !== 'string') {
      throw bad('platform needs string architecture and os');
    }
  }
  return d as unknown as Descriptor;
}

/** Parses JSON bytes of a manifest/index into an object, or throws OCI_MANIFEST_INVALID. */
export function parseJsonObject(bytes: Uint8Array, subject: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: `not valid JSON: ${(e as Error).message}`, cause: e });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'not a JSON object' });
  return v as Record<string, unknown>;
}

/**
 * The children of a manifest or index, in copy order (config before layers); a plain blob has none.
 * `subject` is not a child: referrers point at their subject, they do not own it.
 */
export function childrenOf(desc: Descriptor, bytes: Uint8Array): Descriptor[] {
  if (!isManifestType(desc.mediaType)) return [];
  const subject = desc.digest;
  const doc = parseJsonObject(bytes, subject);
  const declared = doc['mediaType'];
  if (declared !== undefined && declared !== desc.mediaType) {
    throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: `mediaType ${JSON.stringify(declared)} differs from the descriptor's ${desc.mediaType}` });
  }
  if (isIndexType(desc.mediaType)) {
    const list = doc['manifests'];
    if (!Array.isArray(list)) throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'index has no manifests array' });
    return list.map((m, i) => parseDescriptor(m, `${subject}: manifests[${i}]`));
  }
  const layers = doc['layers'];
  if (!Array.isArray(layers)) throw new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message: 'manifest has no layers array' });
  return [parseDescriptor(doc['config'], `${subject}: config`), ...layers.map((l, i) => parseDescriptor(l, `${subject}: layers[${i}]`))];
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
