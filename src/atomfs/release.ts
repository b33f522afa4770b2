import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MosError, describeSystemError, type Logger } from '../base/index.js';
import { closeVerityDevice, detachLoop, listLoopDevices, overlayLowerDirs, readMountInfo, unmount, mountAt, type MountInfoEntry } from '../host/index.js';
import { WORKAROUND_DIR } from './constants.js';
import type { AtomfsPaths } from './paths.js';

/** Every lowerdir of every overlay in the mount table: the atoms still in use. */
export function lowerDirsInUse(mi: readonly MountInfoEntry[]): Set<string> {
  const used = new Set<string>();
  for (const e of mi) for (const d of overlayLowerDirs(e)) used.add(d);
  return used;
}

/** True when `path` or anything below it is a mount point (never recurse through one). */
export function hasMountAtOrBelow(mi: readonly MountInfoEntry[], path: string): boolean {
  return mi.some((e) => e.mountPoint === path || e.mountPoint.startsWith(path + '/'));
}

async function dmName(device: string): Promise<string | undefined> {
  try {
    return (await readFile(`/sys/dev/block/${device}/dm/name`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * Unmounts the atoms among `dirs` (all below `paths.mounts`) that no overlay uses, frees their loop or
 * dm-verity devices, and removes their directories; the shared `workaround` dir goes when unused. Each
 * step re-reads the mount table, so a second run finds nothing to do. Returns the released atom dirs.
 */
export async function releaseUnusedAtoms(
  paths: AtomfsPaths,
  dirs: Iterable<string>,
  opts: { log: Logger; signal?: AbortSignal },
): Promise<string[]> {
  const mi = await readMountInfo();
  const used = lowerDirsInUse(mi);
  const released: string[] = [];
  for (const dir of new Set(dirs)) {
    if (dirname(dir) !== paths.mounts || used.has(dir)) continue;
    // Unmount every stacked mount at dir (an interrupted run may have mounted twice).
    for (let m = mountAt(mi, dir); m !== undefined; m = mountAt(await readMountInfo(), dir)) {
      const dm = m.source.startsWith('/dev/dm-') || m.source.startsWith('/dev/mapper/') ? await dmName(m.device) : undefined;
      await unmount(dir, opts);
      opts.log.debug('released layer mount', { dir, source: m.source });
      if (dm !== undefined) await closeVerityDevice(dm, opts);
      else if (m.source.startsWith('/dev/loop')) await detachIfIdle(m.source, opts);
    }
    if ((await removeEmptyDir(dir)) && basename(dir) !== WORKAROUND_DIR) released.push(dir);
  }
  await removeEmptyDir(paths.mounts);
  return released;
}

// mount -o loop makes autoclear devices the kernel frees at unmount; a device still bound here was
// attached some other way (or by an interrupted mount) and nothing else mounts it.
async function detachIfIdle(loopPath: string, opts: { log: Logger; signal?: AbortSignal }): Promise<void> {
  const loop = (await listLoopDevices()).find((l) => l.path === loopPath);
  if (loop === undefined || loop.autoclear) return;
  if ((await readMountInfo()).some((e) => e.device === loop.device)) return;
  await detachLoop(loopPath, opts);
  opts.log.debug('detached loop device', { loop: loopPath });
}

/** rmdir that tolerates a missing or non-empty dir; true when the dir is gone. */
export async function removeEmptyDir(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY') return false;
    throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot remove directory: ${describeSystemError(e)}`, cause: e });
  }
}

/**
 * Removes a writable root's upper and work dirs and then their target dir if empty. Refuses (ATOMFS_BUSY)
 * when a mount sits at or below any of them: never delete recursively through a mount point.
 */
export async function removeWritableDirs(dirs: readonly string[], parent: string): Promise<string[]> {
  const mi = await readMountInfo();
  const removed: string[] = [];
  for (const d of dirs) {
    if (hasMountAtOrBelow(mi, d)) throw new MosError({ code: 'ATOMFS_BUSY', subject: d, message: 'a mount point is inside; not removing it', hint: 'unmount what is mounted there first' });
    try {
      await rm(d, { recursive: true, force: true });
      removed.push(d);
    } catch (e) {
      throw new MosError({ code: 'HOST_IO', subject: d, message: `cannot remove: ${describeSystemError(e)}`, cause: e });
    }
  }
  if (await removeEmptyDir(parent)) removed.push(parent);
  return removed;
}

/** The entries of a directory, or [] when it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** `dir/name` for each entry of dir. */
export async function childrenOf(dir: string): Promise<string[]> {
  return (await listDir(dir)).map((n) => join(dir, n));
}
