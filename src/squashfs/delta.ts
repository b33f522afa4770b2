import { lstat, open, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { exec } from '../host/index.js';
import { setOpaque } from './whiteouts.js';

/** What an upper tree adds to a lower one, as an overlay layer: entries to copy, whiteouts, opaque dirs. */
export interface TreeDelta {
  /** Paths in the upper tree to copy, each on its own (not recursively), parents first; `.` is the root. */
  readonly entries: readonly string[];
  /** Lower paths the upper tree no longer has. */
  readonly whiteouts: readonly string[];
  /** Directories that replace everything below them (none of the lower children survive). */
  readonly opaqueDirs: readonly string[];
}

/**
 * Compares `upper` with `lower` (the merged tree of the layers below): an entry is copied when it is
 * new, changed in type, mode, owner, content, link target or device number (times are ignored, as
 * the layers fix them); a lower entry gone from `upper` becomes a whiteout, and a directory none of
 * whose lower children survive becomes opaque instead. Extended attributes are not compared.
 */
export async function diffTrees(lower: string, upper: string): Promise<TreeDelta> {
  const entries: string[] = ['.'];
  const emitted = new Set<string>(['']);
  const whiteouts: string[] = [];
  const opaqueDirs: string[] = [];

  const emit = (rel: string): void => {
    if (emitted.has(rel)) return;
    const slash = rel.lastIndexOf('/');
    if (slash > 0) emit(rel.slice(0, slash));
    emitted.add(rel);
    entries.push(rel);
  };
  const emitTree = async (rel: string): Promise<void> => {
    emit(rel);
    if ((await lstat(join(upper, rel))).isDirectory()) {
      for (const name of (await readdir(join(upper, rel))).sort()) await emitTree(`${rel}/${name}`);
    }
  };
  const walk = async (rel: string): Promise<void> => {
    const upNames = (await readdir(join(upper, rel))).sort();
    const lowNames = (await readdir(join(lower, rel))).sort();
    const upSet = new Set(upNames);
    const child = (name: string): string => (rel === '' ? name : `${rel}/${name}`);
    if (rel !== '' && lowNames.length > 0 && !lowNames.some((n) => upSet.has(n))) {
      opaqueDirs.push(rel);
      await emitTree(rel);
      return;
    }
    for (const name of lowNames) {
      if (upSet.has(name)) continue;
      if (rel !== '') emit(rel); // the whiteout needs its directory in the layer
      whiteouts.push(child(name));
    }
    for (const name of upNames) {
      const r = child(name);
      const u = await lstat(join(upper, r));
      const l = await lstat(join(lower, r)).catch(() => undefined);
      if (!l) await emitTree(r);
      else if (u.isDirectory() && l.isDirectory()) {
        if (!sameMeta(u, l)) emit(r);
        await walk(r);
      } else if (u.isDirectory()) await emitTree(r);
      else if (!(await sameEntry(join(upper, r), u, join(lower, r), l))) emit(r);
    }
  };
  if (!sameMeta(await lstat(upper), await lstat(lower))) emit('.');
  await walk('');
  return { entries, whiteouts, opaqueDirs };
}

function sameMeta(a: Stats, b: Stats): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid;
}

async function sameEntry(pa: string, a: Stats, pb: string, b: Stats): Promise<boolean> {
  if (!sameMeta(a, b)) return false;
  if (a.isSymbolicLink()) return (await readlink(pa)) === (await readlink(pb));
  if (a.isCharacterDevice() || a.isBlockDevice()) return a.rdev === b.rdev;
  if (a.isFile()) return a.size === b.size && (await sameContent(pa, pb));
  return true;
}

async function sameContent(pa: string, pb: string): Promise<boolean> {
  const [fa, fb] = [await open(pa, 'r'), await open(pb, 'r')];
  try {
    const [ba, bb] = [Buffer.alloc(1 << 16), Buffer.alloc(1 << 16)];
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, null), fb.read(bb, 0, bb.length, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}

/**
 * Copies the delta's entries from `upper` into the empty directory `dest` with owners, modes,
 * hardlinks and xattrs (GNU tar through `scratch`, a file path it may use), then marks the opaque
 * directories. Whiteouts are left to the layer build. Needs root to keep owners and devices.
 */
export async function materializeDelta(opts: { upper: string; delta: TreeDelta; dest: string; scratch: string }): Promise<void> {
  const list = `${opts.scratch}.list`;
  const tar = `${opts.scratch}.tar`;
  const xattrs = ['--xattrs', '--xattrs-include=*', '--numeric-owner'];
  try {
    await writeFile(list, opts.delta.entries.map((e) => (e === '.' ? '.' : `./${e}`)).join('\0') + '\0');
    await exec(['tar', '--create', '--file', tar, '--directory', opts.upper, '--no-recursion', '--null', '--files-from', list, ...xattrs]);
    await exec(['tar', '--extract', '--file', tar, '--directory', opts.dest, '--same-owner', '--same-permissions', ...xattrs]);
  } finally {
    await rm(list, { force: true });
    await rm(tar, { force: true });
  }
  for (const dir of opts.delta.opaqueDirs) await setOpaque(join(opts.dest, dir));
}
