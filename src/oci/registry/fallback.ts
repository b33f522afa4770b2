import type { Descriptor, FetchBlobOptions, RegistryReader, TransferOptions } from '../types.js';
import { MosError } from '../../base/index.js';
import { ReadOnlyWrites } from '../read-only.js';
import { firstThatWorks, type Endpoint } from './mirrors.js';

/**
 * One repository reached through several endpoints (mirrors, then the primary): every read tries them
 * in order and takes the first that answers. Bytes are verified by each repository as always, so a
 * mirror cannot substitute content. A blob stream is committed to the first endpoint that yields a
 * chunk; a failure after that (a wrong or cut blob) is for the caller to retry with {@link candidates}.
 */
export class FallbackSource extends ReadOnlyWrites implements RegistryReader {
  protected readonly writeHint = 'a mirrored source; push to the registry itself';

  constructor(
    readonly candidates: readonly { readonly endpoint: Endpoint; readonly store: RegistryReader }[],
    /** `host/name` as referenced, for messages. */
    readonly display: string,
  ) {
    super();
  }

  private each<T>(fn: (s: RegistryReader) => Promise<T>): Promise<T> {
    return firstThatWorks(this.candidates, (c) => fn(c.store), this.display);
  }

  resolve(reference: string, opts?: TransferOptions): Promise<Descriptor> {
    return this.each((s) => s.resolve(reference, opts));
  }

  fetchBytes(desc: Descriptor, opts?: TransferOptions): Promise<Uint8Array> {
    return this.each((s) => s.fetchBytes(desc, opts));
  }

  /** Present at any location (a mirror that lacks it is not the last word; one that fails gives way). */
  exists(desc: Descriptor, opts?: TransferOptions): Promise<boolean> {
    return this.each(async (s) => {
      if (await s.exists(desc, opts)) return true;
      throw new MosError({ code: 'OCI_BLOB_UNKNOWN', subject: desc.digest, message: 'not there' });
    }).catch((e: unknown) => {
      if (e instanceof MosError && e.code === 'OCI_BLOB_UNKNOWN') return false;
      throw e;
    });
  }

  async *fetchBlob(desc: Descriptor, opts?: FetchBlobOptions): AsyncIterable<Uint8Array> {
    const { iterator, first } = await this.each(async (s) => {
      const it = s.fetchBlob(desc, opts)[Symbol.asyncIterator]();
      const r = await it.next();
      return { iterator: it, first: r };
    });
    if (first.done) return;
    yield first.value;
    for (;;) {
      const r = await iterator.next();
      if (r.done) return;
      yield r.value;
    }
  }

  referrers(subject: Descriptor, opts: TransferOptions & { readonly artifactType?: string } = {}): Promise<Descriptor[]> {
    return this.each((s) => s.referrers(subject, opts));
  }
}
