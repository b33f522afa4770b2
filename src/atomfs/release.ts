import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MosError, describeSystemError, type Logger } from '../base/index.js';
import { closeVerityDevice, detachLoop, fileError, loopDevice, overlayLowerDirs, readMountInfo, unmount, mountAt, type MountInfoEntry } from '../host/index.js';
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
 * dm-verity devices, and removes their directories; the shared `workaround` dir goes when unused. With
 * `overlay`, that overlay is unmounted first, in the same umount(8) call (one process for the whole
 * teardown of a root). A second run finds nothing to do. Returns the released atom dirs.
 */
export async function releaseUnusedAtoms(
  paths: AtomfsPaths,
  dirs: Iterable<string>,
  opts: { log: Logger; signal?: AbortSignal; overlay?: MountInfoEntry },
): Promise<string[]> {
  const mi = await readMountInfo();
  const used = lowerDirsInUse(mi.filter((e) => e.id !== opts.overlay?.id));
  const todo = [...new Set(dirs)].filter((d) => dirname(d) === paths.mounts && !used.has(d));
  const first = new Map(todo.map((d) => [d, mountAt(mi, d)] as const));
  const dmNames = new Map<string, string | undefined>();
  for (const [d, m] of first) if (m && (m.source.startsWith('/dev/dm-') || m.source.startsWith('/dev/mapper/'))) dmNames.set(d, await dmName(m.device));
  const targets = [...(opts.overlay ? [opts.overlay.mountPoint] : []), ...todo.filter((d) => first.get(d) !== undefined)];
  if (targets.length > 0) {
    try {
      await unmount(targets, opts);
    } catch (e) {
      if (opts.overlay && mountAt(await readMountInfo(), opts.overlay.mountPoint)?.id === opts.overlay.id) throw e;
      // The overlay went; an atom that did not is retried one by one below, with its own error.
    }
  }
  const released: string[] = [];
  for (const d of todo) {
    const m = first.get(d);
    if (m !== undefined) {
      opts.log.debug('released layer mount', { dir: d, source: m.source });
      const dm = dmNames.get(d);
      if (dm !== undefined) await closeVerityDevice(dm, opts);
      else if (m.source.startsWith('/dev/loop')) await detachIfIdle(m.source, opts);
    }
    // Anything still mounted here (a failed umount, or stacked mounts from an interrupted run).
    for (let s = mountAt(await readMountInfo(), d); s !== undefined; s = mountAt(await readMountInfo(), d)) {
      await unmount(d, opts);
      if (s.source.startsWith('/dev/loop')) await detachIfIdle(s.source, opts);
    }
    if ((await removeEmptyDir(d)) && basename(d) !== WORKAROUND_DIR) released.push(d);
  }
  await removeEmptyDir(paths.mounts);
  return released;
}

// mount -o loop makes autoclear devices the kernel frees at unmount; a device still bound here was
// attached some other way (or by an interrupted mount) and nothing else mounts it.
async function detachIfIdle(loopPath: string, opts: { log: Logger; signal?: AbortSignal }): Promise<void> {
  const loop = await loopDevice(loopPath);
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

/** The entries of a directory, or [] when it does not exist; a directory that cannot be read throws. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fileError(e, dir, 'cannot list');
  }
}

/** `dir/name` for each entry of dir. */
export async function childrenOf(dir: string): Promise<string[]> {
  return (await listDir(dir)).map((n) => join(dir, n));
}
