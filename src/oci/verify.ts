import { createHash } from 'node:crypto';
import { MosError, splitDigest } from '../base/index.js';
import type { Descriptor } from './types.js';

/**
 * Passes `source` through; throws OCI_SIZE_MISMATCH on the first byte past `want.size` or when the
 * stream ends short, OCI_DIGEST_MISMATCH when the content hashes differently. Callers rename their
 * output into place only after it finishes.
 */
export async function* verified(source: AsyncIterable<Uint8Array>, want: Descriptor, subject?: string): AsyncGenerator<Uint8Array> {
  const { algorithm, hex } = splitDigest(want.digest);
  const hash = createHash(algorithm);
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.byteLength;
    // The size comes from a (signed) manifest: a source sending more is broken or hostile; stop now.
    if (seen > want.size) throw sizeMismatch(want, `more than ${want.size} bytes`, subject);
    hash.update(chunk);
    yield chunk;
  }
  if (seen !== want.size) throw sizeMismatch(want, `${seen} of ${want.size} bytes`, subject);
  const got = hash.digest('hex');
  if (got !== hex) {
    throw new MosError({
      code: 'OCI_DIGEST_MISMATCH',
      subject: subject ?? want.digest,
      message: `content hashes to ${algorithm}:${got}, not ${want.digest}`,
      hint: 'the source is corrupt or was tampered with; nothing was stored',
    });
  }
}

function sizeMismatch(want: Descriptor, detail: string, subject?: string): MosError {
  return new MosError({
    code: 'OCI_SIZE_MISMATCH',
    subject: subject ?? want.digest,
    message: `size mismatch: got ${detail}`,
    hint: 'the source is corrupt or was tampered with; nothing was stored',
  });
}

/** Checks whole bytes against a descriptor (same errors as `verified`). */
export function verifyBytes(bytes: Uint8Array, want: Descriptor, subject?: string): void {
  if (bytes.byteLength !== want.size) throw sizeMismatch(want, `${bytes.byteLength} of ${want.size} bytes`, subject);
  const { algorithm, hex } = splitDigest(want.digest);
  const got = createHash(algorithm).update(bytes).digest('hex');
  if (got !== hex) {
    throw new MosError({ code: 'OCI_DIGEST_MISMATCH', subject: subject ?? want.digest, message: `content hashes to ${algorithm}:${got}, not ${want.digest}` });
  }
}
