import { MosError } from '../base/index.js';
import { parseDescriptor, parseJsonObject } from './graph.js';
import type { Descriptor, ImageIndex, ImageManifest } from './types.js';

// The one parser of image manifests and indexes: hostile bytes in, checked documents out. Every
// descriptor is type-checked; unknown fields are kept (they are part of what was signed or digested).

function annotationsOf(doc: Record<string, unknown>, subject: string): Readonly<Record<string, string>> | undefined {
  const ann = doc['annotations'];
  if (ann === undefined) return undefined;
  if (ann === null || typeof ann !== 'object' || Array.isArray(ann)) throw invalid(subject, 'annotations is not an object');
  for (const [k, v] of Object.entries(ann)) if (typeof v !== 'string') throw invalid(subject, `annotations.${k} is not a string`);
  return ann as Record<string, string>;
}

function invalid(subject: string, message: string): MosError {
  return new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message });
}

function common(doc: Record<string, unknown>, subject: string) {
  for (const key of ['mediaType', 'artifactType'] as const) {
    if (doc[key] !== undefined && typeof doc[key] !== 'string') throw invalid(subject, `${key} is not a string`);
  }
  annotationsOf(doc, subject);
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

/** The layers of manifest bytes, checked (a shorthand for `parseImageManifest(...).layers`). */
export function manifestLayers(bytes: Uint8Array, subject: string): readonly Descriptor[] {
  return parseImageManifest(bytes, subject).layers;
}
