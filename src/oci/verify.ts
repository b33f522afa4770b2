import { createHash, type Hash } from 'node:crypto';
import { MosError, splitDigest } from '../base/index.js';
import type { Descriptor } from './types.js';

/**
 * Checks a blob as it passes: OCI_SIZE_MISMATCH on the first byte past `want.size` or when it ends
 * short, OCI_DIGEST_MISMATCH when the content hashes differently. Started at `offset` (a resumed
 * download) it checks the size only, unless the bytes before `offset` are fed to it with `update` first.
 */
export class BlobVerifier {
  private readonly hash: Hash | undefined;
  private seen: number;

  constructor(
    private readonly want: Descriptor,
    private readonly subject?: string,
    opts: { readonly offset?: number; readonly hash?: boolean } = {},
  ) {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > want.size) throw sizeMismatch(want, `a resume at byte ${offset} of ${want.size}`, subject);
    this.seen = offset;
    this.hash = (opts.hash ?? true) ? createHash(splitDigest(want.digest).algorithm) : undefined;
  }

  /** Bytes seen so far (the offset included). */
  get size(): number {
    return this.seen;
  }

  update(chunk: Uint8Array): void {
    this.seen += chunk.byteLength;
    // The size comes from a (signed) manifest: a source sending more is broken or hostile; stop now.
    if (this.seen > this.want.size) throw sizeMismatch(this.want, `more than ${this.want.size} bytes`, this.subject);
    this.hash?.update(chunk);
  }

  /** Throws unless exactly `want.size` bytes were seen and (when hashing) they hash to `want.digest`. */
  finish(): void {
    if (this.seen !== this.want.size) throw sizeMismatch(this.want, `${this.seen} of ${this.want.size} bytes`, this.subject);
    if (!this.hash) return;
    const { algorithm, hex } = splitDigest(this.want.digest);
    const got = this.hash.digest('hex');
    if (got !== hex) {
      throw new MosError({
        code: 'OCI_DIGEST_MISMATCH',
        subject: this.subject ?? this.want.digest,
        message: `content hashes to ${algorithm}:${got}, not ${this.want.digest}`,
        hint: 'the source is corrupt or was tampered with; nothing was stored',
      });
    }
  }
}

/**
 * Passes `source` through, checked by a {@link BlobVerifier}: throws at the first excess byte, or at
 * the end on a short stream or a digest mismatch. Callers rename their output into place only after it
 * finishes.
 */
export function verified(source: AsyncIterable<Uint8Array>, want: Descriptor, subject?: string): AsyncGenerator<Uint8Array> {
  return checked(source, new BlobVerifier(want, subject));
}

/**
 * `verified` for a stream that starts at `offset` of the blob (a resumed download): from 0 it is
 * `verified`; past 0 only the size can be checked here, and the digest is checked by the store, which
 * holds the bytes before `offset`. `sizeOnly` skips the digest from 0 too, for a caller that hashes
 * every byte itself (a store writing the blob): one hash pass instead of two.
 */
export function verifiedFrom(source: AsyncIterable<Uint8Array>, want: Descriptor, offset: number, subject?: string, sizeOnly = false): AsyncGenerator<Uint8Array> {
  return checked(source, new BlobVerifier(want, subject, { offset, hash: offset === 0 && !sizeOnly }));
}

async function* checked(source: AsyncIterable<Uint8Array>, v: BlobVerifier): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    v.update(chunk);
    yield chunk;
  }
  v.finish();
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
  const v = new BlobVerifier(want, subject);
  v.update(bytes);
  v.finish();
}
