import { join } from 'node:path';
import { silentLogger, type Logger } from '../base/index.js';
import { acquireLock, detachLoop, exists, listLoopDevices, mountOption, readMountInfo } from '../host/index.js';
import { ATOMFS_DIR, UPPER_DIR, WORK_DIR } from './constants.js';
import { atomfsPaths } from './paths.js';
import { childrenOf, listDir, releaseUnusedAtoms, removeWritableDirs } from './release.js';
import { readMarkerBlobs } from './verify.js';

/** Options of {@link cleanupStale}. */
export interface CleanupStaleOptions {
  /** Absolute `<root>/scratch-writes`. */
  readonly scratchDir: string;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
}

/** What {@link cleanupStale} released. */
export interface CleanupStaleResult {
  readonly releasedLayers: readonly string[];
  readonly detachedLoops: readonly string[];
  readonly removedDirs: readonly string[];
}

/**
 * Releases what an interrupted run left behind: layer mounts below `<scratch>/atomfs/mounts/` that no
 * overlay uses (and their empty dirs), unmounted loop devices backed by blobs we verified, and writable
 * `<scratch>/<target>/{upper,work}` dirs no mounted overlay uses. Roots in use are untouched. Idempotent.
 */
export async function cleanupStale(opts: CleanupStaleOptions): Promise<CleanupStaleResult> {
  const log = opts.log ?? silentLogger;
  const call = { log, ...(opts.signal ? { signal: opts.signal } : {}) };
  const paths = atomfsPaths(opts.scratchDir);
  if (!(await exists(paths.base))) return { releasedLayers: [], detachedLoops: [], removedDirs: [] };
  await using _lock = await acquireLock(paths.lock, { wait: true, busyCode: 'ATOMFS_BUSY', ...(opts.signal ? { signal: opts.signal } : {}) });

  const mi = await readMountInfo();
  const atomDirs = [...mi.filter((e) => e.mountPoint.startsWith(paths.mounts + '/')).map((e) => e.mountPoint), ...(await childrenOf(paths.mounts))];
  const releasedLayers = await releaseUnusedAtoms(paths, atomDirs, call);

  // A loop device is ours when its backing file is a blob we verified; stale when nothing mounts it.
  const blobs = await readMarkerBlobs(paths.verified, await listDir(paths.verified));
  const mounted = new Set((await readMountInfo()).map((e) => e.device));
  const detachedLoops: string[] = [];
  for (const loop of await listLoopDevices()) {
    if (!blobs.has(loop.backingFile) || mounted.has(loop.device)) continue;
    await detachLoop(loop.path, call);
    log.info('detached stale loop device', { loop: loop.path, blob: loop.backingFile });
    detachedLoops.push(loop.path);
  }

  const inUse = new Set((await readMountInfo()).flatMap((e) => [mountOption(e.superOptions, 'upperdir'), mountOption(e.superOptions, 'workdir')]));
  const removedDirs: string[] = [];
  for (const name of await listDir(opts.scratchDir)) {
    if (name === ATOMFS_DIR) continue;
    const dir = join(opts.scratchDir, name);
    const entries = await listDir(dir);
    // Only a dir holding nothing but our upper/work pair is one of ours.
    if (entries.length === 0 || !entries.every((n) => n === UPPER_DIR || n === WORK_DIR)) continue;
    const dirs = entries.map((n) => join(dir, n));
    if (dirs.some((d) => inUse.has(d))) continue;
    removedDirs.push(...(await removeWritableDirs(dirs, dir)));
    log.info('removed stale writable dirs', { dir });
  }
  return { releasedLayers, detachedLoops, removedDirs };
}
