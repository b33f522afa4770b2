// A keyset's bootkit, laid out as mos keeps it (reference/mos.md §2): `<keys>/<keyset>/bootkit/` with
// the UKI as `kernel.efi` and `oci/`, an OCI layout whose image `bootkit-squashfs` holds
// `bootkit/kernel.efi`. `mosb manifest publish --project KEYSET:P` adds that image as the `bootkit`
// target, and `mosctl install --partition` copies its UKI to the ESP.
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MosError, describeSystemError, sha256Hex, type Digest, type Logger, type OnProgress } from '../base/index.js';
import { exists, fsyncDir, readFileLimited, writeFileAtomic } from '../host/index.js';
import { openLayout } from '../oci/index.js';
import { BOOTKIT_TAG, BOOTKIT_UKI_PATH } from '../protocol/index.js';
import { buildImage } from './build-image.js';
import { keysetPaths } from './keyset.js';
import { readPeLayout } from './uki.js';

/** Largest UKI accepted (a kernel and an initramfs with node in it are well below). */
export const MAX_UKI_BYTES = 512 * 1024 * 1024;

export interface CreateBootkitOptions {
  readonly keyset: string;
  /** The UKI (`mosb uki build`) the machines boot. */
  readonly uki: string;
  /** Base of the keyset tree (`$XDG_DATA_HOME`); default the environment's. */
  readonly dataHome?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

export interface CreateBootkitResult {
  readonly keyset: string;
  /** `<keys>/<keyset>/bootkit`. */
  readonly dir: string;
  /** The target source publish uses: `oci:<dir>/oci:bootkit-squashfs`. */
  readonly source: string;
  /** The bootkit image's manifest digest. */
  readonly digest: Digest;
  readonly uki: { readonly bytes: number; readonly sha256: string };
  /** A bootkit was there before and has been replaced. */
  readonly replaced: boolean;
}

/** Where a keyset's bootkit lives (no disk access). */
export function bootkitPaths(opts: { keyset: string; dataHome?: string }): { dir: string; layout: string; uki: string; source: string } {
  const dir = join(keysetPaths(opts).dir, 'bootkit');
  const layout = join(dir, 'oci');
  return { dir, layout, uki: join(dir, 'kernel.efi'), source: `oci:${layout}:${BOOTKIT_TAG}` };
}

/** The keyset's bootkit target source, or undefined when the keyset has no bootkit layout. */
export async function keysetBootkit(opts: { keyset: string; dataHome?: string }): Promise<string | undefined> {
  const p = bootkitPaths(opts);
  return (await exists(join(p.layout, 'index.json'))) ? p.source : undefined;
}

/**
 * Creates (or replaces) the keyset's bootkit from a UKI: the UKI is read once and checked (a PE32+ EFI
 * executable with a `.linux` section), the squashfs image is built reproducibly (the same UKI gives the
 * same digest), and the whole `bootkit/` directory is made aside and renamed into place, so it appears
 * whole or not at all. A bad input is one error and leaves the keyset as it was.
 */
export async function createBootkit(opts: CreateBootkitOptions): Promise<CreateBootkitResult> {
  const ks = keysetPaths(opts);
  if (!(await exists(ks.caCert))) {
    throw new MosError({ code: 'TRUST_KEYSET_UNKNOWN', subject: ks.dir, message: `keyset "${opts.keyset}" does not exist (no manifest CA)`, hint: `create it with: mosb keyset add ${opts.keyset}` });
  }
  const bytes = await readFileLimited(opts.uki, MAX_UKI_BYTES);
  let sections: readonly string[];
  try {
    sections = readPeLayout(bytes, opts.uki).sections;
  } catch (e) {
    const why = e instanceof MosError ? e.message.replace(/^is not a usable EFI stub: /, '') : String(e);
    throw new MosError({ code: 'INPUT_INVALID', subject: opts.uki, message: `is not a unified kernel image (${why})`, hint: 'build one with mosb uki build', cause: e });
  }
  if (!sections.includes('.linux')) {
    throw new MosError({ code: 'INPUT_INVALID', subject: opts.uki, message: 'is an EFI executable without a .linux section, not a unified kernel image', hint: 'build one with mosb uki build' });
  }
  const paths = bootkitPaths(opts);
  const work = await mkdtemp(join(tmpdir(), 'mosb-bootkit-'));
  const tmp = join(ks.dir, `.tmp-bootkit-${randomBytes(6).toString('hex')}`);
  try {
    const tree = join(work, 'tree');
    await mkdir(join(tree, BOOTKIT_UKI_PATH, '..'), { recursive: true, mode: 0o755 });
    await writeFileAtomic(join(tree, BOOTKIT_UKI_PATH), bytes, { mode: 0o644 });
    await mkdir(tmp, { mode: 0o755 });
    await writeFileAtomic(join(tmp, 'kernel.efi'), bytes, { mode: 0o644 });
    const built = await buildImage({
      rootfs: tree, dst: await openLayout(join(tmp, 'oci'), { create: true, ...(opts.log ? { log: opts.log } : {}) }), tag: BOOTKIT_TAG, workDir: work,
      ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.log ? { log: opts.log } : {}),
    });
    const replaced = await swapInto(tmp, paths.dir);
    return { keyset: opts.keyset, dir: paths.dir, source: paths.source, digest: built.descriptor.digest, uki: { bytes: bytes.length, sha256: sha256Hex(bytes) }, replaced };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_IO', subject: paths.dir, message: `cannot create the bootkit: ${describeSystemError(e)}`, cause: e });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Renames `tmp` to `dir`; an existing `dir` is moved aside first and removed after, so a crash leaves
// the old bootkit, the new one, or (between the two renames) a `.old-bootkit-*` beside no bootkit.
async function swapInto(tmp: string, dir: string): Promise<boolean> {
  const parent = join(dir, '..');
  const old = join(parent, `.old-bootkit-${randomBytes(6).toString('hex')}`);
  const replaced = await exists(dir);
  if (replaced) await rename(dir, old);
  try {
    await rename(tmp, dir);
  } catch (e) {
    if (replaced) await rename(old, dir).catch(() => {});
    throw e;
  }
  await fsyncDir(parent);
  if (replaced) await rm(old, { recursive: true, force: true });
  return replaced;
}
