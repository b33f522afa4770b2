import { performUpdate, type OperationMode, type OperationUpdateResult } from './operations.js';
import { requireTracked } from './tracked.js';
import type { UpdateOptions } from './update.js';

export interface UpgradeResult extends OperationUpdateResult {
  /** The tracked source that was re-resolved. */
  readonly source: string;
  readonly dryRun: boolean;
  /** True when the source now names a manifest that changes the system. */
  readonly available: boolean;
}

/**
 * `mosctl upgrade [--check]`: re-resolves the tracked source (recorded by install, switch and complete
 * updates) and updates from it. `check` is a dry run: fetch and verify the manifest, plan, measure the
 * download, write nothing; `available` says whether an update exists.
 */
export async function upgrade(opts: Omit<UpdateOptions, 'source' | 'mode' | 'dryRun'> & { readonly mode: OperationMode; readonly check?: boolean }): Promise<UpgradeResult> {
  const tracked = await requireTracked(opts.root);
  const r = await performUpdate({ ...opts, source: tracked.source, dryRun: opts.check ?? false });
  return { ...r, source: tracked.source, dryRun: opts.check ?? false, available: !r.noop || r.repaired.length > 0 };
}

/** `mosctl switch SOURCE`: updates from SOURCE and tracks it from now on (even a partial manifest). */
export async function switchSource(opts: Omit<UpdateOptions, 'mode' | 'track'> & { readonly mode: OperationMode }): Promise<OperationUpdateResult> {
  return performUpdate({ ...opts, track: true });
}
