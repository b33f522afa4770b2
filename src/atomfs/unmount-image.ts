import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { acquireLock, exists, mountAt, mountOption, overlayLowerDirs, readMountInfo } from '../host/index.js';
import { atomfsPaths } from './paths.js';
import { releaseUnusedAtoms, removeWritableDirs } from './release.js';

/** Options of {@link unmountImage}. */
export interface UnmountImageOptions {
  /** Where the root is mounted. */
  readonly dest: string;
  /** Absolute `<root>/scratch-writes` the root was mounted from. */
  readonly scratchDir: string;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
}

/** What {@link unmountImage} did. */
export interface UnmountImageResult {
  readonly dest: string;
  /** False when nothing was mounted at dest (a second unmount is a no-op). */
  readonly unmounted: boolean;
  /** Layer mount dirs released because no other root uses them. */
  readonly releasedLayers: readonly string[];
  /** Writable upper/work dirs removed. */
  readonly removedDirs: readonly string[];
}

/**
 * Unmounts the atomfs root at `dest`, then the layers no other overlay uses (their loop or dm devices go
 * with them), then a writable root's upper and work dirs. Idempotent. Refuses (INPUT_INVALID) a mount at
 * dest that is not an overlay of this scratch dir's layers.
 */
export async function unmountImage(opts: UnmountImageOptions): Promise<UnmountImageResult> {
  const log = opts.log ?? silentLogger;
  if (!isAbsolute(opts.dest)) throw new MosError({ code: 'INPUT_INVALID', subject: opts.dest, message: 'mount destination must be an absolute path' });
  const dest = (await exists(opts.dest)) ? await realpath(opts.dest) : opts.dest;
  const none: UnmountImageResult = { dest, unmounted: false, releasedLayers: [], removedDirs: [] };
  const paths = atomfsPaths(opts.scratchDir);
  if (!(await exists(paths.base))) return none;
  await using _lock = await acquireLock(paths.lock, { wait: true, busyCode: 'ATOMFS_BUSY', ...(opts.signal ? { signal: opts.signal } : {}) });

  const entry = mountAt(await readMountInfo(), dest);
  if (entry === undefined) return none;
  const lowers = overlayLowerDirs(entry);
  const ours = lowers.filter((d) => dirname(d) === paths.mounts);
  if (entry.fsType !== 'overlay' || ours.length === 0) {
    throw new MosError({
      code: 'INPUT_INVALID',
      subject: dest,
      message: `the ${entry.fsType} mount here is not an atomfs root of ${opts.scratchDir}; not unmounting it`,
      hint: 'check --dest and --root',
    });
  }
  const releasedLayers = await releaseUnusedAtoms(paths, ours, { log, overlay: entry, ...(opts.signal ? { signal: opts.signal } : {}) });
  const upper = mountOption(entry.superOptions, 'upperdir');
  const work = mountOption(entry.superOptions, 'workdir');
  let removedDirs: string[] = [];
  // Only dirs we made (<scratch>/<target>/{upper,work}) are removed; a foreign upperdir stays.
  if (upper !== undefined && work !== undefined && dirname(upper) === dirname(work) && dirname(dirname(upper)) === opts.scratchDir) {
    removedDirs = await removeWritableDirs([upper, work], dirname(upper));
  }
  log.info('unmounted', { dest, released: releasedLayers.length });
  return { dest, unmounted: true, releasedLayers, removedDirs };
}
