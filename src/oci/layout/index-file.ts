import { MAX_LAYOUT_TAG_LENGTH, MosError, isLayoutTag } from '../../base/index.js';
import { parseDescriptor, parseJsonObject } from '../documents.js';
import { ANNOTATION_REF_NAME, OCI_INDEX } from '../media-types.js';
import type { Descriptor } from '../types.js';

// Pure logic of a layout's index.json (image-spec image-layout.md): parse, tag, untag, serialize.

/** index.json is read whole; a store with ~60k tags still fits. Larger is hostile or broken. */
export const MAX_INDEX_JSON_BYTES = 16 * 1024 * 1024;

/** A parsed index.json. `raw` keeps unknown top-level fields so a rewrite preserves them. */
export interface LayoutIndex {
  readonly raw: Readonly<Record<string, unknown>>;
  readonly manifests: readonly Descriptor[];
}

/** One tag of a layout and the descriptor it names. */
export interface LayoutTag {
  readonly tag: string;
  readonly descriptor: Descriptor;
}


/** An empty index (what a new layout starts with). */
export function emptyLayoutIndex(): LayoutIndex {
  return { raw: { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }, manifests: [] };
}

/**
 * Parses index.json bytes, checking every field a reader relies on (hostile input). Unknown fields and
 * unknown media types are kept, as the layout spec requires. Throws OCI_LAYOUT_INVALID naming `subject`.
 */
export function parseLayoutIndex(bytes: Uint8Array, subject: string): LayoutIndex {
  const invalid = (message: string, cause?: unknown) =>
    new MosError({ code: 'OCI_LAYOUT_INVALID', subject, message, hint: 'restore index.json from a backup, or re-create the layout', cause });
  if (bytes.byteLength > MAX_INDEX_JSON_BYTES) throw invalid(`${bytes.byteLength} bytes, more than the ${MAX_INDEX_JSON_BYTES} allowed`);
  let doc: Record<string, unknown>;
  try {
    doc = parseJsonObject(bytes, subject);
  } catch (e) {
    throw invalid((e as Error).message, e);
  }
  if (doc['schemaVersion'] !== 2) throw invalid(`schemaVersion is ${JSON.stringify(doc['schemaVersion'])}, not 2`);
  if (doc['mediaType'] !== undefined && doc['mediaType'] !== OCI_INDEX) throw invalid(`mediaType ${JSON.stringify(doc['mediaType'])} is not ${OCI_INDEX}`);
  const list = doc['manifests'];
  if (!Array.isArray(list)) throw invalid('manifests is not an array');
  const manifests = list.map((m, i) => {
    try {
      return parseDescriptor(m, `${subject}: manifests[${i}]`);
    } catch (e) {
      throw invalid(`manifests[${i}]: ${(e as Error).message}`, e);
    }
  });
  return { raw: doc, manifests };
}

/** The bytes we write: compact JSON like skopeo's, unknown top-level fields preserved. */
export function serializeLayoutIndex(index: LayoutIndex): string {
  return JSON.stringify({ ...index.raw, schemaVersion: 2, manifests: index.manifests });
}

/** The tag (`org.opencontainers.image.ref.name`) on an index.json descriptor, if any. */
export function tagOf(desc: Descriptor): string | undefined {
  return desc.annotations?.[ANNOTATION_REF_NAME];
}

/** Returns `tag` when it is a valid ref.name (`:` allowed: mos tags by full digest), else throws OCI_REFERENCE_INVALID. */
export function validateTag(tag: string): string {
  if (!isLayoutTag(tag)) {
    throw new MosError({
      code: 'OCI_REFERENCE_INVALID',
      subject: tag === '' ? '(empty tag)' : tag,
      message: 'not a valid layout tag',
      hint: `use letters, digits and -._:@+ separated components joined by "/", at most ${MAX_LAYOUT_TAG_LENGTH} characters`,
    });
  }
  return tag;
}

/** All tags, in index order. */
export function layoutTags(index: LayoutIndex): LayoutTag[] {
  const out: LayoutTag[] = [];
  for (const d of index.manifests) {
    const tag = tagOf(d);
    if (tag !== undefined) out.push({ tag, descriptor: d });
  }
  return out;
}

/**
 * The index with `tag` pointing at `desc` only: every other entry carrying `tag` is dropped, the new
 * entry keeps `desc`'s own annotations plus the ref.name. Idempotent.
 */
export function withTag(index: LayoutIndex, desc: Descriptor, tag: string): LayoutIndex {
  validateTag(tag);
  const entry: Descriptor = {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    ...(desc.artifactType !== undefined ? { artifactType: desc.artifactType } : {}),
    ...(desc.platform !== undefined ? { platform: desc.platform } : {}),
    annotations: { ...desc.annotations, [ANNOTATION_REF_NAME]: tag },
  };
  const kept = index.manifests.filter((d) => tagOf(d) !== tag);
  return { raw: index.raw, manifests: [...kept, entry] };
}

/** The index without any entry tagged `tag`, and how many entries that removed. */
export function withoutTag(index: LayoutIndex, tag: string): { index: LayoutIndex; removed: number } {
  const kept = index.manifests.filter((d) => tagOf(d) !== tag);
  return { index: { raw: index.raw, manifests: kept }, removed: index.manifests.length - kept.length };
}

/** The index keeping only entries whose digest satisfies `keep` (gc's untag step). */
export function retainEntries(index: LayoutIndex, keep: (d: Descriptor) => boolean): { index: LayoutIndex; removed: Descriptor[] } {
  const removed = index.manifests.filter((d) => !keep(d));
  return { index: { raw: index.raw, manifests: index.manifests.filter(keep) }, removed };
}
