import type { Digest } from '../base/index.js';
import type { Descriptor } from './types.js';

// Pure planning for fsck and gc: graph marking over an injected loader, and the sweep order.

/** What the loader says about one node of the graph. */
export type NodeState =
  | { readonly kind: 'absent' }
  /** present but unusable: hashes wrongly or is an unparseable manifest (`message` says which) */
  | { readonly kind: 'bad'; readonly message: string }
  | { readonly kind: 'ok'; readonly children: readonly Descriptor[] };

/** Result of marking: what is reachable, and what the walk found wrong on the way. */
export interface MarkResult {
  /** Present nodes reachable from the roots (bad ones included: they are referenced, so gc keeps them). */
  readonly reachable: ReadonlySet<Digest>;
  /** Referenced but absent, with the first node that referenced each (undefined for a root). */
  readonly missing: ReadonlyMap<Digest, Digest | undefined>;
  readonly bad: ReadonlyMap<Digest, string>;
}

/** Marks everything reachable from `roots`, loading each distinct node once (cycles cut). */
export async function markReachable(roots: readonly Descriptor[], load: (d: Descriptor) => Promise<NodeState>): Promise<MarkResult> {
  const reachable = new Set<Digest>();
  const missing = new Map<Digest, Digest | undefined>();
  const bad = new Map<Digest, string>();
  const seen = new Set<Digest>();
  const queue: { desc: Descriptor; parent: Digest | undefined }[] = roots.map((desc) => ({ desc, parent: undefined }));
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
    const { desc, parent } = item;
    if (seen.has(desc.digest)) continue;
    seen.add(desc.digest);
    const state = await load(desc);
    if (state.kind === 'absent') {
      missing.set(desc.digest, parent);
      continue;
    }
    reachable.add(desc.digest);
    if (state.kind === 'bad') bad.set(desc.digest, state.message);
    else for (const c of state.children) queue.push({ desc: c, parent: desc.digest });
  }
  return { reachable, missing, bad };
}

/** A blob gc may delete, and what it holds (so parents go before children). */
export interface SweepCandidate {
  readonly digest: Digest;
  readonly size: number;
  readonly kind: 'index' | 'manifest' | 'blob';
}

/**
 * The blobs to delete, in a crash-safe order: indexes, then manifests, then plain blobs. A crash part
 * way never leaves a manifest whose children were already deleted (what a skip-if-present copy trusts).
 */
export function planSweep(candidates: readonly SweepCandidate[], reachable: ReadonlySet<Digest>): SweepCandidate[] {
  const rank = { index: 0, manifest: 1, blob: 2 } as const;
  return candidates
    .filter((c) => !reachable.has(c.digest))
    .sort((a, b) => rank[a.kind] - rank[b.kind] || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}
