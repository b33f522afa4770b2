import { chmod, chown, lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError } from '../base/index.js';
import { exec } from '../host/index.js';
import { findOpaqueDirs, isOverlayWhiteout } from './whiteouts.js';

/**
 * Extracts squashfs layer blobs (bottom first) into the empty or absent directory `dest` and merges
 * them the way overlay does: whiteouts (char 0:0) delete, opaque directories hide what is below,
 * upper entries replace lower ones. The result is the merged tree with no whiteouts left in it.
 * `scratch` must be an empty directory on the same filesystem as `dest`. Needs root (owners, devices,
 * `trusted.*` xattrs).
 */
export async function unpackSquashfsLayers(opts: { layers: readonly string[]; dest: string; scratch: string }): Promise<void> {
  await mkdir(opts.dest, { recursive: true });
  for (const [i, blob] of opts.layers.entries()) {
    const dir = join(opts.scratch, `layer-${i}`);
    // unsquashfs stops at bytes_used, so the appended verity data is ignored.
    await exec(['unsquashfs', '-no-progress', '-quiet', '-force', '-dest', dir, blob]);
    const opaque = await findOpaqueDirs(dir);
    await mergeDir(dir, opts.dest, '', opaque);
    await rm(dir, { recursive: true, force: true });
  }
}

async function mergeDir(layer: string, merged: string, rel: string, opaque: Set<string>): Promise<void> {
  const from = join(layer, rel);
  const to = join(merged, rel);
  await copyDirMeta(from, to);
  for (const name of (await readdir(from)).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const src = join(layer, r);
    const dst = join(merged, r);
    const st = await lstat(src);
    if (isOverlayWhiteout(st)) {
      await rm(dst, { recursive: true, force: true });
      continue;
    }
    const below = await lstat(dst).catch(() => undefined);
    if (st.isDirectory() && below?.isDirectory() && !opaque.has(r)) {
      await mergeDir(layer, merged, r, opaque);
      continue;
    }
    if (below) await rm(dst, { recursive: true, force: true });
    await rename(src, dst);
    // Whiteouts under a replaced or opaque directory only hid lower entries that are gone now.
    if (st.isDirectory()) await dropWhiteouts(dst);
  }
}

async function copyDirMeta(from: string, to: string): Promise<void> {
  const st = await lstat(from);
  if (!st.isDirectory()) throw new MosError({ code: 'INTERNAL', subject: from, message: 'expected a directory' });
  await chown(to, st.uid, st.gid);
  await chmod(to, st.mode & 0o7777);
}

async function dropWhiteouts(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (isOverlayWhiteout(st)) await rm(p);
    else if (st.isDirectory()) await dropWhiteouts(p);
  }
}
