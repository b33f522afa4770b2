import { chmod, chown, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError } from '../base/index.js';
import { exec } from '../host/index.js';
import { OCI_OPAQUE_MARKER, OCI_WHITEOUT_PREFIX, setOpaque } from './whiteouts.js';

/** Compression of a tar layer blob. */
export type TarCompression = 'none' | 'gzip' | 'zstd';

/** Overlay whiteouts a converted tar layer needs (opaque dirs are already marked in the tree). */
export interface ExtractedTarLayer {
  /** Paths (relative) to add as overlay whiteouts when building the squashfs layer. */
  readonly whiteouts: readonly string[];
  readonly opaqueDirs: readonly string[];
}

/**
 * Extracts a tar layer blob into the empty directory `dest` as root (owners, modes, symlinks, hardlinks,
 * xattrs kept) with GNU tar, then turns OCI whiteouts into overlay form: `.wh..wh..opq` becomes the opaque
 * xattrs on its directory, `.wh.NAME` is removed and NAME returned as a whiteout to add. A broken archive is
 * IMAGE_INVALID naming `subject` (default the blob path). Needs root.
 */
export async function extractTarLayer(opts: { blob: string; compression: TarCompression; dest: string; subject?: string }): Promise<ExtractedTarLayer> {
  // A layer without a "./" entry must not leave mkdtemp's 0700 as the layer root: overlay takes the
  // topmost layer's root attributes.
  await chown(opts.dest, 0, 0);
  await chmod(opts.dest, 0o755);
  const decompress = opts.compression === 'gzip' ? ['--gzip'] : opts.compression === 'zstd' ? ['--zstd'] : [];
  try {
    await exec([
      'tar', '--extract', '--file', opts.blob, '--directory', opts.dest, ...decompress,
      '--same-owner', '--same-permissions', '--numeric-owner', '--xattrs', '--xattrs-include=*',
    ]);
  } catch (e) {
    if (!(e instanceof MosError && e.code === 'HOST_EXEC_FAILED')) throw e;
    // Most often a truncated or corrupt archive; the tar message says which.
    throw new MosError({ code: 'IMAGE_INVALID', subject: opts.subject ?? opts.blob, message: `cannot extract the tar layer: ${e.message}`, cause: e });
  }
  const whiteouts: string[] = [];
  const opaqueDirs: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const dir = join(opts.dest, rel);
    const names = (await readdir(dir)).sort();
    const present = new Set(names);
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (name === OCI_OPAQUE_MARKER) {
        if (rel === '') throw new MosError({ code: 'IMAGE_INVALID', subject: opts.blob, message: 'an opaque whiteout at the layer root is not supported' });
        await rm(join(dir, name), { force: true });
        await setOpaque(dir);
        opaqueDirs.push(rel);
      } else if (name.startsWith(OCI_WHITEOUT_PREFIX)) {
        await rm(join(dir, name), { recursive: true, force: true });
        const target = name.slice(OCI_WHITEOUT_PREFIX.length);
        // `.wh..wh.*` other than the opaque marker is AUFS metadata; a target present in this same layer
        // already hides the lower one.
        if (target.startsWith(OCI_WHITEOUT_PREFIX) || target === '' || target === '.' || target === '..' || present.has(target)) continue;
        whiteouts.push(rel === '' ? target : `${rel}/${target}`);
      } else if ((await lstat(join(dir, name))).isDirectory()) {
        await walk(r);
      }
    }
  };
  await walk('');
  return { whiteouts, opaqueDirs };
}
