// Streams whose source already checks size and digest while they are read (ContentSource.fetchBlob
// does: the stream throws at the end on a mismatch, before a writer can rename anything into place).
// A writer given such a stream may skip its own second hash pass; it must still check the size.
const marked = new WeakSet<object>();

/** Marks `stream` as verified by its source (copy does this for `src.fetchBlob` streams). Returns it. */
export function markSourceVerified<T extends AsyncIterable<Uint8Array>>(stream: T): T {
  marked.add(stream);
  return stream;
}

/** True when `stream` was marked by `markSourceVerified`. */
export function isSourceVerified(stream: AsyncIterable<Uint8Array>): boolean {
  return marked.has(stream);
}
