import { MosError, isMosError, parseReference, type Reference } from '../base/index.js';

/** Longest `source` we read: real ones are well under 200 characters. */
const MAX_SOURCE = 1024;

/**
 * Parses a target's `source` with the one reference grammar (base/reference.ts): registry references
 * (`[docker://]host[:port]/name[:tag][@sha256:…]`, Docker Hub by default) and layouts (`oci:DIR:TAG`,
 * `oci:DIR@sha256:…`). A target must name its image, so a tag or a digest is required. Throws
 * MANIFEST_INVALID naming `subject`.
 */
export function parseSource(s: string, subject?: string): Reference {
  const bad = (message: string, cause?: unknown): MosError =>
    new MosError({
      code: 'MANIFEST_INVALID',
      subject,
      message,
      hint: 'use docker://HOST[:PORT]/NAME:TAG, HOST[:PORT]/NAME@sha256:HEX or oci:DIR:TAG',
      cause,
    });
  if (s.length === 0) throw bad('is empty');
  if (s.length > MAX_SOURCE) throw bad(`is longer than ${MAX_SOURCE} characters`);
  if (/[\0\n]/.test(s)) throw bad('contains a NUL or newline');
  let ref: Reference;
  try {
    ref = parseReference(s);
  } catch (e) {
    if (isMosError(e, 'OCI_REFERENCE_INVALID')) throw bad(e.message, e);
    throw e;
  }
  if (ref.tag === undefined && ref.digest === undefined) {
    throw bad(`${JSON.stringify(s)} has neither a tag nor a digest${ref.kind === 'layout' ? ' (oci:DIR:TAG)' : ''}`);
  }
  return ref;
}

/** Why `s` is not a valid target source, or undefined when it is. */
export function sourceProblem(s: string): string | undefined {
  try {
    parseSource(s);
    return undefined;
  } catch (e) {
    if (isMosError(e)) return e.message;
    throw e;
  }
}
