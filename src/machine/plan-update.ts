import { MosError } from '../base/index.js';
import type { InstallManifest, InstallTarget, StorageItem } from '../manifest/index.js';
import type { LoadedSystem } from './load-system.js';
import { compareVersions } from '../manifest/index.js';

/** One target of the planned generation and the install manifest (sha) that defines it. */
export interface PlannedEntry {
  readonly target: InstallTarget;
  readonly sha: string;
}

/** A target an update adds, removes or keeps: its name, version and image digest. */
export interface TargetRef {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
}

/** What an update would do; `--dry-run` prints this and writes nothing. Every list holds target objects with `name`. */
export interface UpdatePlan {
  readonly entries: readonly PlannedEntry[];
  readonly storage: readonly StorageItem[];
  readonly added: readonly TargetRef[];
  readonly changed: readonly { readonly name: string; readonly from: string; readonly to: string; readonly digest: string }[];
  readonly removed: readonly TargetRef[];
  readonly unchanged: readonly TargetRef[];
  /** True when the new generation would equal the current one (same targets from the same manifests). */
  readonly noop: boolean;
}

/**
 * Merges an incoming install manifest into the current system (pure). `complete` replaces the target
 * set; `partial` replaces or adds the named targets and storage labels and keeps the rest, in the old
 * order with new ones appended. Refuses another product (SYSTEM_PRODUCT_MISMATCH) and an older version
 * of a target unless `allowDowngrade` (SYSTEM_DOWNGRADE; ordering rule in version-order.ts).
 */
export function planUpdate(current: LoadedSystem, incoming: InstallManifest, opts: { allowDowngrade?: boolean } = {}): UpdatePlan {
  const inc = incoming.value;
  const products = new Set([...current.manifests.values()].map((m) => m.value.product));
  if (!products.has(inc.product) || products.size !== 1) {
    throw new MosError({
      code: 'SYSTEM_PRODUCT_MISMATCH',
      subject: 'install.json: product',
      message: `is "${inc.product}", but this system runs "${[...products].join(', ')}"`,
      hint: 'an update must be for the same product; install a fresh system for another one',
    });
  }
  const old = new Map(current.targets.map((t) => [t.target.service_name, { target: t.target, sha: t.manifest.sha }]));
  const incomingByName = new Map(inc.targets.map((t) => [t.service_name, t]));
  for (const t of inc.targets) {
    const before = old.get(t.service_name);
    if (before && !opts.allowDowngrade && compareVersions(t.version, before.target.version) < 0) {
      throw new MosError({
        code: 'SYSTEM_DOWNGRADE',
        subject: `install.json: target ${t.service_name}: version`,
        message: `${t.version} is older than the installed ${before.target.version}`,
        hint: 'pass --allow-downgrade to install an older version on purpose',
      });
    }
  }
  let entries: PlannedEntry[];
  let storage: StorageItem[];
  if (inc.update_type === 'complete') {
    entries = inc.targets.map((target) => ({ target, sha: incoming.sha }));
    storage = [...(inc.storage ?? [])];
  } else {
    entries = current.targets.map((t) => {
      const replacement = incomingByName.get(t.target.service_name);
      return replacement ? { target: replacement, sha: incoming.sha } : { target: t.target, sha: t.manifest.sha };
    });
    for (const t of inc.targets) if (!old.has(t.service_name)) entries.push({ target: t, sha: incoming.sha });
    const labels = new Set((inc.storage ?? []).map((s) => s.label));
    storage = [...(current.sys.storage ?? []).filter((s) => !labels.has(s.label)), ...(inc.storage ?? [])];
  }
  const ref = (t: InstallTarget): TargetRef => ({ name: t.service_name, version: t.version, digest: t.digest });
  const added: TargetRef[] = [];
  const changed: { name: string; from: string; to: string; digest: string }[] = [];
  const unchanged: TargetRef[] = [];
  for (const e of entries) {
    const before = old.get(e.target.service_name);
    if (!before) added.push(ref(e.target));
    else if (before.target.digest !== e.target.digest || before.target.version !== e.target.version) {
      changed.push({ name: e.target.service_name, from: before.target.version, to: e.target.version, digest: e.target.digest });
    } else unchanged.push(ref(e.target));
  }
  const names = new Set(entries.map((e) => e.target.service_name));
  const removed = current.targets.filter((t) => !names.has(t.target.service_name)).map((t) => ref(t.target));
  const sameShas = entries.every((e) => old.get(e.target.service_name)?.sha === e.sha) && entries.length === current.targets.length;
  const sameStorage = JSON.stringify(storage) === JSON.stringify(current.sys.storage ?? []);
  return { entries, storage, added, changed, removed, unchanged, noop: sameShas && sameStorage && added.length === 0 && removed.length === 0 };
}
