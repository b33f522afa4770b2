import type { Logger } from '../base/index.js';
import { currentGeneration, listHistory, lockConfig, readGeneration } from '../config/index.js';
import { writeFileAtomic } from '../host/index.js';
import { readStateFile } from './state-file.js';
import { systemPaths } from './paths.js';

const MAX_PINS_BYTES = 1024 * 1024;

/** The pinned generations' commit ids (`config/pins.json`; absent = none). */
export async function readPins(root: string): Promise<Set<string>> {
  const v = await readStateFile(systemPaths(root).pinsFile, {
    maxBytes: MAX_PINS_BYTES,
    valid: (x): x is { pinned: string[] } => Array.isArray((x as { pinned?: unknown })?.pinned) && (x as { pinned: unknown[] }).pinned.every((p) => typeof p === 'string' && /^[0-9a-f]{40}$/.test(p)),
    shape: '{"pinned": [commit ids]}',
    hint: 'remove it and pin again',
  });
  return new Set(v?.pinned ?? []);
}

export interface PinResult {
  readonly generation: number;
  readonly commit: string;
  readonly pinned: boolean;
  /** Every pinned generation after the change, oldest first. */
  readonly pins: readonly number[];
  /** A dry run: `pins` is what the change would make; nothing was written. */
  readonly dryRun?: true;
}

/**
 * `mosctl pin N` / `unpin N`: marks a generation whose images `gc --keep` must keep (a known-good
 * release to fall back to). Pins are commit ids, so they survive later commits; under the writer lock.
 */
export async function setPin(opts: { readonly root: string; readonly ref: number | string; readonly pinned: boolean; readonly dryRun?: boolean; readonly log?: Logger }): Promise<PinResult> {
  await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  await using _lock = opts.dryRun ? undefined : await lockConfig(opts.root, opts.log ? { log: opts.log } : {});
  const gen = await readGeneration({ root: opts.root, ref: opts.ref });
  const pins = await readPins(opts.root);
  if (opts.pinned) pins.add(gen.oid);
  else pins.delete(gen.oid);
  const history = await listHistory({ root: opts.root });
  const kept = history.filter((g) => pins.has(g.oid));
  if (opts.dryRun) return { generation: gen.number, commit: gen.oid, pinned: opts.pinned, pins: kept.map((g) => g.number), dryRun: true };
  // Only pins of generations that exist are written back (a pin never outlives its commit).
  await writeFileAtomic(systemPaths(opts.root).pinsFile, JSON.stringify({ pinned: kept.map((g) => g.oid) }, null, 2) + '\n');
  return { generation: gen.number, commit: gen.oid, pinned: opts.pinned, pins: kept.map((g) => g.number) };
}
