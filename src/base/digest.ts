import { createHash } from 'node:crypto';
import { MosError } from './errors.js';

/** An OCI content digest `algorithm:encoded`; we verify sha256 and sha512. */
export type Digest = `${'sha256' | 'sha512'}:${string}`;

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** True when `s` is a lowercase sha256 or sha512 digest string. */
export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Throws OCI_REFERENCE_INVALID (naming `subject`) unless `s` is a valid digest. */
export function parseDigest(s: unknown, subject?: string): Digest {
  if (!isDigest(s)) {
    throw new MosError({
      code: 'OCI_REFERENCE_INVALID',
      subject,
      message: `${JSON.stringify(s)} is not a digest (want sha256:<64 lowercase hex>)`,
    });
  }
  return s;
}

/** Splits a valid digest into algorithm and hex. */
export function splitDigest(d: Digest): { algorithm: 'sha256' | 'sha512'; hex: string } {
  const i = d.indexOf(':');
  return { algorithm: d.slice(0, i) as 'sha256' | 'sha512', hex: d.slice(i + 1) };
}

/** sha256 digest of bytes. */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${sha256Hex(data)}`;
}

/** Lowercase sha256 hex of bytes. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
