import { open, readFile, stat } from 'node:fs/promises';
import { MosError, isMosError } from '../base/index.js';
import { exec } from './exec.js';

/** Common options of the mount helpers. */
export interface MountCallOptions {
  readonly signal?: AbortSignal;
}

// mount(8) and umount(8) failures become HOST_MOUNT_FAILED naming the target, with exec's stderr tail.
async function run(argv: string[], target: string, what: string, opts: MountCallOptions): Promise<void> {
  try {
    await exec(argv, { signal: opts.signal, timeoutMs: 60_000 });
  } catch (e) {
    if (isMosError(e, 'HOST_TOOL_MISSING')) throw e;
    throw new MosError({
      code: 'HOST_MOUNT_FAILED',
      subject: target,
      message: `${what} failed: ${e instanceof Error ? e.message : String(e)}`,
      cause: e,
    });
  }
}

/**
 * Mounts a squashfs image read-only. With `loop`, mount(8) attaches an autoclear loop device limited to
 * `sizeLimit` bytes (the squashfs part of a blob with appended verity data) that the kernel frees at
 * unmount; otherwise `source` is a block device. Needs root.
 */
export async function mountSquashfs(
  opts: MountCallOptions & { source: string; target: string; loop: boolean; sizeLimit?: number },
): Promise<void> {
  const o = ['ro'];
  if (opts.loop) o.push('loop');
  if (opts.loop && opts.sizeLimit !== undefined) o.push(`sizelimit=${opts.sizeLimit}`);
  await run(['mount', '-t', 'squashfs', '-o', o.join(','), opts.source, opts.target], opts.target, 'squashfs mount', opts);
}

/** Mounts a squashfs image through FUSE (`squashfuse_ll`, else `squashfuse`); works without loop devices. */
export async function mountSquashfuse(opts: MountCallOptions & { source: string; target: string }): Promise<void> {
  try {
    await run(['squashfuse_ll', opts.source, opts.target], opts.target, 'squashfuse mount', opts);
  } catch (e) {
    if (!isMosError(e, 'HOST_TOOL_MISSING')) throw e;
    await run(['squashfuse', opts.source, opts.target], opts.target, 'squashfuse mount', opts);
  }
}

/** Mounts an overlay at `target` with a complete option string (the caller checks its length). */
export async function mountOverlay(opts: MountCallOptions & { target: string; options: string }): Promise<void> {
  await run(['mount', '-t', 'overlay', 'overlay', '-o', opts.options, opts.target], opts.target, 'overlay mount', opts);
}

/**
 * Unmounts `target` (the topmost mount there), or several targets in order with one umount(8) process.
 * Throws HOST_MOUNT_FAILED, e.g. when one is busy (the others may be unmounted by then).
 */
export async function unmount(target: string | readonly string[], opts: MountCallOptions = {}): Promise<void> {
  const targets = typeof target === 'string' ? [target] : target;
  await run(['umount', ...targets], targets.join(' '), 'unmount', opts);
}

/**
 * Opens a dm-verity device `name` over a blob with appended hash data (`veritysetup open`), then proves
 * it: `veritysetup open` succeeds with a wrong root hash (only reads fail), so the first block is read
 * through the device and `veritysetup status` must say `verified`. A device that fails either is closed
 * again and ATOMFS_VERITY_MISMATCH names the blob.
 */
export async function openVerityDevice(
  opts: MountCallOptions & { blob: string; name: string; rootHash: string; hashOffset: number },
): Promise<string> {
  const argv = ['veritysetup', 'open', opts.blob, opts.name, opts.blob, opts.rootHash, `--hash-offset=${opts.hashOffset}`];
  await run(argv, opts.blob, 'dm-verity open', opts);
  const dev = `/dev/mapper/${opts.name}`;
  let why: string | undefined;
  try {
    const fh = await open(dev, 'r');
    try {
      await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    } finally {
      await fh.close();
    }
    const { stdout } = await exec(['veritysetup', 'status', opts.name], { signal: opts.signal, okCodes: [0, 1, 2, 3, 4] });
    const status = /^\s*status:\s*(\S+)/m.exec(stdout)?.[1];
    if (status !== 'verified') why = `veritysetup status says ${status ?? 'nothing'}`;
  } catch (e) {
    why = `reading through the verity device failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (why !== undefined) {
    await closeVerityDevice(opts.name, opts).catch(() => {});
    throw new MosError({
      code: 'ATOMFS_VERITY_MISMATCH',
      subject: opts.blob,
      message: `the blob does not match its verity root hash ${opts.rootHash} (${why})`,
      hint: 'the stored blob is corrupt or the manifest names the wrong root hash: mosctl fsck --repair fetches it again',
    });
  }
  return dev;
}

/** Closes a dm-verity device opened by {@link openVerityDevice}. */
export async function closeVerityDevice(name: string, opts: MountCallOptions = {}): Promise<void> {
  await run(['veritysetup', 'close', name], name, 'dm-verity close', opts);
}

/** True when this process is root in the initial user namespace (uid_map `0 0 4294967295`), as atomfs asks. */
export async function isHostRoot(): Promise<boolean> {
  if (process.geteuid?.() !== 0) return false;
  try {
    const map = (await readFile('/proc/self/uid_map', 'utf8')).trim().split(/\s+/);
    return map.join(' ') === '0 0 4294967295';
  } catch {
    return false;
  }
}

/** True when the kernel offers device-mapper (a real /dev/mapper/control and a registered misc device). */
export async function hasDeviceMapper(): Promise<boolean> {
  try {
    if (!(await stat('/dev/mapper/control')).isCharacterDevice()) return false;
    // `veritysetup open` leaves a control node behind even where dm_mod is missing: ask the kernel too.
    return /\bdevice-mapper\b/.test(await readFile('/proc/misc', 'utf8'));
  } catch {
    return false;
  }
}
