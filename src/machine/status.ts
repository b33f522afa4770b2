import { readGeneration } from '../config/index.js';
import type { NetworkType, StorageItem, UpdateType } from '../manifest/index.js';
import { loadSystem, type InstallVerifier, type LoadedSystem } from './load-system.js';

/** One row of `mosctl status`. */
export interface StatusTarget {
  readonly name: string;
  readonly service_type: string;
  readonly version: string;
  readonly digest: string;
  readonly size: number;
  readonly nsgroup: string;
  readonly network: NetworkType;
  /** The `<sha>` of the install manifest defining the target. */
  readonly manifest: string;
}

/** What `mosctl status` reports. */
export interface StatusResult {
  readonly generation: { readonly number: number; readonly commit: string; readonly time: string; readonly message: string };
  /** The product of the install manifests (joined with ", " in the unlikely case they differ). */
  readonly product: string;
  /** The install manifests' update_type when they agree, else `mixed` (a system built by partial updates). */
  readonly update_type: UpdateType | '' | 'mixed';
  readonly targets: readonly StatusTarget[];
  readonly storage: readonly StorageItem[];
}

/** Options of status. */
export interface StatusOptions {
  readonly root: string;
  /** Generation to show (default: current). */
  readonly ref?: string | number;
  readonly verify?: InstallVerifier;
}

/** The installed system's current generation and targets, read from the config repository. */
export async function status(opts: StatusOptions): Promise<StatusResult> {
  const loaded = await loadSystem(await readGeneration({ root: opts.root, ...(opts.ref !== undefined ? { ref: opts.ref } : {}) }), opts.verify ? { verify: opts.verify } : {});
  return summarize(loaded);
}

/** The status view of a loaded generation. Pure. */
export function summarize(s: LoadedSystem): StatusResult {
  const ms = [...s.manifests.values()];
  const products = [...new Set(ms.map((m) => m.value.product))];
  const types = [...new Set(ms.map((m) => m.value.update_type))];
  const g = s.generation;
  return {
    generation: { number: g.number, commit: g.oid, time: g.time.toISOString(), message: g.message },
    product: products.join(', '),
    update_type: types.length === 1 ? types[0]! : types.length === 0 ? '' : 'mixed',
    targets: s.targets.map(({ target: t, manifest }) => ({
      name: t.service_name,
      service_type: t.service_type,
      version: t.version,
      digest: t.digest,
      size: t.size,
      nsgroup: t.nsgroup,
      network: t.network.type,
      manifest: manifest.sha,
    })),
    storage: s.sys.storage ?? [],
  };
}
