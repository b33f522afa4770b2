/**
 * Request coalescing for a read that many clients ask for at once: every caller gets a result computed
 * entirely after its call began (never a stale cached one), but concurrent callers share computations,
 * so N simultaneous requests cost at most two reads, not N.
 */
export function coalesce<T>(read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let next: Promise<T> | undefined;
  const start = (): Promise<T> => {
    const p = read().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  return () => {
    if (!running) return start();
    // The read in flight began before this call: wait for it, then share one fresh read.
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return start();
      });
    return next;
  };
}
