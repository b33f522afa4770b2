import { MosError, isDigest, silentLogger, type Digest, type Logger } from '../base/index.js';
import { listHistory, lockConfig, readGeneration } from '../config/index.js';
import { gc, openLayout, type GcResult } from '../oci/index.js';
import { loadSystem } from './load-system.js';
import { systemPaths } from './paths.js';
import { readPins } from './pins.js';
import { readBootState } from './boot-state.js';

/** Options of `systemGc` (`mosctl gc`). */
export interface SystemGcOptions {
  readonly root: string;
  /** Report what would be removed, change nothing. */
  readonly dryRun?: boolean;
  /**
   * Collect even when a generation cannot be read: its images are then kept only if another
   * generation references them. Default false: an unreadable generation stops gc before any change.
   */
  readonly force?: boolean;
  /**
   * Retention: keep the images of the newest `keep` generations, plus the current one, the one before
   * it (rollback's default target) and every pinned one; older generations stay in history but lose
   * their images. Absent: every generation keeps its images.
   */
  readonly keep?: number;
  readonly log?: Logger;
}

/** What `systemGc` did: the store gc result plus where the roots came from. */
export interface SystemGcResult extends GcResult {
  readonly generations: number;
  readonly roots: readonly Digest[];
  /** Generations that could not be read (only with `force`). */
  readonly skippedGenerations: readonly number[];
  /** Generations whose images were kept, and those (with --keep) whose images were let go. */
  readonly keptGenerations: readonly number[];
  readonly prunedGenerations: readonly number[];
}

/**
 * Removes store blobs no retained generation references. Roots = every target digest of every
 * generation in history (rollback must keep working), plus the install manifests' own digests (their
 * `<sha>.json`), should they be stored as blobs. Holds the config writer lock, so no install or update
 * copies into the store meanwhile.
 */
export async function systemGc(opts: SystemGcOptions): Promise<SystemGcResult> {
  const log = opts.log ?? silentLogger;
  await listHistory({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  await using _lock = await lockConfig(opts.root);
  const gens = await listHistory({ root: opts.root });
  if (opts.keep !== undefined && (!Number.isInteger(opts.keep) || opts.keep < 1)) {
    throw new MosError({ code: 'INPUT_INVALID', subject: `keep ${opts.keep}`, message: 'must be a whole number of generations, at least 1' });
  }
  const pins = await readPins(opts.root);
  // The good generation is what a failed boot falls back to: its images stay whatever --keep says.
  const good = (await readBootState(opts.root))?.good?.commit;
  const last = gens.length;
  const kept = gens.filter((g) => opts.keep === undefined || g.number > last - opts.keep || g.number >= last - 1 || pins.has(g.oid) || g.oid === good);
  const pruned = gens.filter((g) => !kept.includes(g)).map((g) => g.number);
  const roots = new Set<Digest>();
  const skipped: number[] = [];
  for (const info of kept) {
    try {
      const sys = await loadSystem(await readGeneration({ root: opts.root, ref: info.number }));
      for (const t of sys.targets) if (isDigest(t.target.digest)) roots.add(t.target.digest);
      for (const sha of sys.manifests.keys()) roots.add(`sha256:${sha}`);
    } catch (e) {
      if (!opts.force || !(e instanceof MosError)) throw e;
      log.warn('skipping an unreadable generation', { generation: info.number, error: e.message });
      skipped.push(info.number);
    }
  }
  if (skipped.length === kept.length) {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: opts.root, message: 'no generation could be read: refusing to collect everything', hint: 'repair the config store first (mosctl fsck)' });
  }
  const store = await openLayout(systemPaths(opts.root).store, { log });
  const result = await gc(store, { roots: [...roots], dryRun: opts.dryRun ?? false, log });
  if (pruned.length) log.info(`generations ${pruned.join(', ')} keep their history but not their images`);
  return { ...result, generations: gens.length, roots: [...roots], skippedGenerations: skipped, keptGenerations: kept.map((g) => g.number), prunedGenerations: pruned };
}
