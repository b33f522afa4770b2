// The boot chain on the ESP of a machine `install --partition` made: the UKI at the removable-media path
// EFI/BOOT/BOOTX64.EFI and as the named entry EFI/mosctl/mosctl.efi. The UKI is a given file, else the
// installed `bootkit` target's `bootkit/kernel.efi` (mos's InstallNewBoot copies the same file),
// read from the verified store through an atomfs mount like any target, never from unverified bytes.
import { copyFile, mkdir, mkdtemp, open, realpath, rename, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { BOOTKIT_TARGET, BOOTKIT_UKI_PATH } from '../protocol/index.js';
import { mountTarget, umountTarget } from './mount.js';
import { loadVerifiedSystem } from './trust-policy.js';

/** Where the UKI goes on the ESP, relative to its root. */
export const ESP_UKI_PATHS = ['EFI/BOOT/BOOTX64.EFI', 'EFI/mosctl/mosctl.efi'] as const;

export interface WriteEspOptions {
  /** The installed system's root (the installer's staging directory). */
  readonly root: string;
  /** The mounted ESP. */
  readonly esp: string;
  /** A UKI file: overrides the bootkit target. */
  readonly uki?: string;
  readonly capath?: string;
  readonly now?: Date;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
}

/** What went onto the ESP, and from where. */
export type WriteEspResult = { readonly files: readonly string[] } & (
  | { readonly from: 'file'; readonly path: string }
  | { readonly from: 'bootkit'; readonly digest: string; readonly version: string }
);

/**
 * Copies the UKI onto the ESP: `uki` when given, else the installed bootkit target's; undefined (nothing
 * written) when there is neither. The bootkit is mounted read-only, its layers checked before they are
 * mounted, and unmounted again whatever happens; a bootkit without an EFI executable at
 * `bootkit/kernel.efi` (or with a link leading out of it) is refused before the ESP is touched. Needs root.
 */
export async function writeEsp(opts: WriteEspOptions): Promise<WriteEspResult | undefined> {
  const log = opts.log ?? silentLogger;
  if (opts.uki !== undefined) {
    await checkEfi(opts.uki, `UKI ${opts.uki}`);
    return { from: 'file', path: opts.uki, files: await copyToEsp(opts.uki, opts.esp) };
  }
  const sys = await loadVerifiedSystem(opts.root, opts.capath, opts.now);
  const bootkit = sys.targets.find((t) => t.target.service_name === BOOTKIT_TARGET)?.target;
  if (bootkit === undefined) return undefined;
  const mnt = await mkdtemp(join(tmpdir(), 'mosctl-bootkit-'));
  let mounted = false;
  let failed = false;
  try {
    await mountTarget({
      root: opts.root, target: BOOTKIT_TARGET, dest: mnt, readonly: true, log,
      ...(opts.capath !== undefined ? { capath: opts.capath } : {}), ...(opts.now ? { now: opts.now } : {}), ...(opts.signal ? { signal: opts.signal } : {}),
    });
    mounted = true;
    const file = join(mnt, BOOTKIT_UKI_PATH);
    const what = `target ${BOOTKIT_TARGET}: ${BOOTKIT_UKI_PATH}`;
    // The image is signed, but a link inside it must still not pick a file of the live system.
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined) throw new MosError({ code: 'NOT_FOUND', subject: what, message: 'is not in the bootkit image', hint: 'build the bootkit with mosb keyset bootkit KEYSET UKI, or give --uki FILE' });
    if (!real.startsWith(mnt + sep)) throw new MosError({ code: 'INPUT_INVALID', subject: what, message: 'is a link leading out of the bootkit image' });
    await checkEfi(real, what);
    log.info(`UKI from the ${BOOTKIT_TARGET} target ${bootkit.version} (${bootkit.digest})`);
    return { from: 'bootkit', digest: bootkit.digest, version: bootkit.version, files: await copyToEsp(real, opts.esp) };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // A failed unmount is the error when nothing else failed; otherwise the first error is the one to see.
    if (mounted) {
      await umountTarget({ root: opts.root, dest: mnt, log }).catch((e: unknown) => {
        if (!failed) throw e;
        log.warn(`cannot unmount ${mnt}: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
    await rmdir(mnt).catch((e) => log.warn(`cannot remove ${mnt}: ${e instanceof Error ? e.message : String(e)}`));
  }
}

/** Checks that `file` is a regular file starting with the MZ header every EFI (PE) executable has. */
export async function checkEfi(file: string, subject: string): Promise<void> {
  const st = await stat(file).catch(() => undefined);
  if (st === undefined) throw new MosError({ code: 'NOT_FOUND', subject, message: 'does not exist' });
  if (!st.isFile()) throw new MosError({ code: 'INPUT_INVALID', subject, message: 'is not a regular file' });
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    await fh.read(head, 0, 2, 0);
    if (head.toString('latin1') !== 'MZ') throw new MosError({ code: 'INPUT_INVALID', subject, message: 'is not an EFI executable (no MZ header)' });
  } finally {
    await fh.close();
  }
}

// Each copy lands under a temp name and is renamed over the old file: a crash leaves the old or the new UKI.
async function copyToEsp(src: string, esp: string): Promise<string[]> {
  for (const rel of ESP_UKI_PATHS) {
    const dest = join(esp, rel);
    await mkdir(join(dest, '..'), { recursive: true });
    await copyFile(src, `${dest}.new`);
    await rename(`${dest}.new`, dest);
  }
  return [...ESP_UKI_PATHS];
}
