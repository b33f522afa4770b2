import { MosError, isDigest } from '../base/index.js';
import type { Descriptor, ImageIndex, ImageManifest } from './types.js';

// The one parser of image manifests and indexes: hostile bytes in, checked documents out. Every
// descriptor is type-checked; unknown fields are kept (they are part of what was signed or digested).

// Annotations, on a descriptor or a document: an object of strings.
function checkAnnotations(ann: unknown, subject: string): void {
  if (ann === undefined) return;
  if (ann === null || typeof ann !== 'object' || Array.isArray(ann)) throw invalid(subject, 'annotations is not an object');
  for (const [k, v] of Object.entries(ann)) if (typeof v !== 'string') throw invalid(subject, `annotations.${k} is not a string`);
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
  checkAnnotations(d['annotations'], subject);
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

function invalid(subject: string, message: string): MosError {
  return new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message });
}

function common(doc: Record<string, unknown>, subject: string) {
  for (const key of ['mediaType', 'artifactType'] as const) {
    if (doc[key] !== undefined && typeof doc[key] !== 'string') throw invalid(subject, `${key} is not a string`);
  }
  checkAnnotations(doc['annotations'], subject);
  if (doc['subject'] !== undefined) parseDescriptor(doc['subject'], `${subject}: subject`);
}

/**
 * Parses image manifest bytes (OCI or Docker v2 schema 2): `config` and every entry of `layers` must be
 * descriptors. Pure; throws OCI_MANIFEST_INVALID naming `subject` and the bad field.
 */
export function parseImageManifest(bytes: Uint8Array, subject: string): ImageManifest {
  const doc = parseJsonObject(bytes, subject);
  if (Array.isArray(doc['manifests'])) throw invalid(subject, 'is an image index, not an image manifest');
  common(doc, subject);
  parseDescriptor(doc['config'], `${subject}: config`);
  const layers = doc['layers'];
  if (!Array.isArray(layers)) throw invalid(subject, 'has no layers array');
  layers.forEach((l, i) => parseDescriptor(l, `${subject}: layers[${i}]`));
  return doc as unknown as ImageManifest;
}

/** Parses image index bytes (OCI index or Docker manifest list); pure, throws OCI_MANIFEST_INVALID. */
export function parseImageIndex(bytes: Uint8Array, subject: string): ImageIndex {
  const doc = parseJsonObject(bytes, subject);
  common(doc, subject);
  const manifests = doc['manifests'];
  if (!Array.isArray(manifests)) throw invalid(subject, 'has no manifests array');
  manifests.forEach((m, i) => parseDescriptor(m, `${subject}: manifests[${i}]`));
  return doc as unknown as ImageIndex;
}

/** Bytes an image's blobs take (config and layers; the manifest itself not counted). */
export function imageContentBytes(m: ImageManifest): number {
  return m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
}
