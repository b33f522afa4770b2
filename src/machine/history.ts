import { isMosError } from '../base/index.js';
import { listHistory, readGeneration } from '../config/index.js';
import { loadSystem, type InstallVerifier } from './load-system.js';
import { readPins } from './pins.js';

/** One generation in `mosctl history`. */
export interface HistoryEntry {
  readonly number: number;
  readonly oid: string;
  readonly time: string;
  readonly message: string;
  readonly product: string;
  /** Targets of the generation with their pinned digests, in system order. */
  readonly targets: readonly { readonly name: string; readonly version: string; readonly digest: string }[];
  /** Why this generation could not be read (an old broken generation does not hide the others). */
  readonly problem?: string;
  readonly current: boolean;
  /** Pinned (`mosctl pin`): gc --keep keeps its images. */
  readonly pinned: boolean;
}

/** Options of history. */
export interface HistoryOptions {
  readonly root: string;
  readonly verify?: InstallVerifier;
}

/** Every generation of the installed system, oldest first, with product and target digests. */
export async function history(opts: HistoryOptions): Promise<HistoryEntry[]> {
  const gens = await listHistory({ root: opts.root });
  const pins = await readPins(opts.root);
  const out: HistoryEntry[] = [];
  for (const g of gens) {
    const base = { number: g.number, oid: g.oid, time: g.time.toISOString(), message: g.message, current: g.number === gens.length, pinned: pins.has(g.oid) };
    try {
      const s = await loadSystem(await readGeneration({ root: opts.root, ref: g.oid }), opts.verify ? { verify: opts.verify } : {});
      const products = [...new Set([...s.manifests.values()].map((m) => m.value.product))];
      out.push({ ...base, product: products.join(', '), targets: s.targets.map(({ target: t }) => ({ name: t.service_name, version: t.version, digest: t.digest })) });
    } catch (e) {
      if (!isMosError(e) || e.code === 'CONFIG_NOT_INSTALLED') throw e;
      out.push({ ...base, product: '', targets: [], problem: `${e.subject ? e.subject + ': ' : ''}${e.message}` });
    }
  }
  return out;
}
