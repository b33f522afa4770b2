import { MosError } from '../base/index.js';

/**
 * The write half of a `ContentStore` that only reads (a mirrored source, the downloader's view of a
 * registry): every write is refused naming the store and what to use instead.
 */
export abstract class ReadOnlyWrites {
  abstract readonly display: string;
  /** What to do instead of writing here, for the message. */
  protected abstract readonly writeHint: string;

  pushBlob(): Promise<void> {
    return Promise.reject(this.refused());
  }

  pushManifest(): Promise<void> {
    return Promise.reject(this.refused());
  }

  tag(): Promise<void> {
    return Promise.reject(this.refused());
  }

  private refused(): MosError {
    return new MosError({ code: 'INTERNAL', subject: this.display, message: `is read-only here: ${this.writeHint}` });
  }
}
