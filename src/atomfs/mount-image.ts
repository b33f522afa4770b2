import { rm } from 'node:fs/promises';
import { MosError, describeSystemError, silentLogger, splitDigest, type Logger, type OnProgress } from '../base/index.js';
import {
  acquireLock,
  ensureDir,
  hasDeviceMapper,
  isHostRoot,
  mountAt,
  mountOption,
  mountOverlay,
  mountSquashfs,
  mountSquashfuse,
  openVerityDevice,
  overlayLowerDirs,
  readMountInfo,
  type MountInfoEntry,
} from '../host/index.js';
import type { MountPlan, PlannedLayer } from './plan.js';
import { atomfsPaths, writablePaths } from './paths.js';
import { hasMountAtOrBelow, releaseUnusedAtoms, removeWritableDirs } from './release.js';
import { readBlobFacts, verifyLayer, type BlobFacts } from './verify.js';

/**
 * How layers are mounted: `auto` picks dm-verity, then loop, then squashfuse as the host allows;
 * `dm-verity` refuses anything else (the boot path: every read checked by the kernel).
 */
export type LayerMountMode = 'auto' | 'dm-verity' | 'loop' | 'squashfuse';

/** Options of {@link mountImage}. */
export interface MountImageOptions {
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  /** A `step` event before each side effect (`verify`, `mount-layer`, `overlay`). */
  readonly onProgress?: OnProgress;
  /** Default `auto`. `squashfuse` forces the FUSE path (what a user namespace gets). */
  readonly layerMount?: LayerMountMode;
}

/** How one layer ended up mounted. */
export interface MountedLayer {
  readonly digest: string;
  readonly dir: string;
  /** `shared`: it was already mounted for another root. */
  readonly via: 'shared' | 'loop' | 'dm-verity' | 'squashfuse';
  /** True when its verity tree or digest was checked in this call (false: a current marker said so). */
  readonly checked: boolean;
}

/** What {@link mountImage} did. */
export interface MountImageResult {
  readonly target: string;
  readonly dest: string;
  readonly writable: boolean;
  /** True when this exact root was already mounted at dest (nothing done). */
  readonly alreadyMounted: boolean;
  readonly layers: readonly MountedLayer[];
}

/**
 * Applies a {@link planMount} plan as root: checks every layer (verity tree or digest) before mounting
 * anything, mounts each layer read-only once at `<scratch>/atomfs/mounts/<hex>` (shared with other roots),
 * then the overlay at `plan.dest`. Serialised by `<scratch>/atomfs/.lock`. On failure, layers mounted by
 * this call that no overlay uses are released again. Idempotent for the same plan.
 */
export async function mountImage(plan: MountPlan, opts: MountImageOptions = {}): Promise<MountImageResult> {
  const log = opts.log ?? silentLogger;
  const paths = atomfsPaths(plan.scratchDir);
  const step = (s: string, detail?: string) => opts.onProgress?.({ kind: 'step', step: s, ...(detail !== undefined ? { detail } : {}) });
  const overlay = plan.steps.find((s) => s.kind === 'overlay');
  if (overlay?.kind !== 'overlay') throw new MosError({ code: 'INTERNAL', message: 'mount plan has no overlay step' });

  // Integrity first, before anything is written: a refused mount leaves the scratch tree as it was (no
  // atomfs/ dir, no lock file, no markers). Checking reads only the blobs, so it needs no lock; the
  // markers of the layers that passed are written under the lock once every layer passed.
  const mode = opts.layerMount ?? 'auto';
  const { hostRoot, dm } = await hostCaps(mode);
  if (mode === 'dm-verity') {
    for (const l of plan.layers) if (!dm || l.rootHash === undefined) throw verityRequired(l, dm);
  }
  const facts = new Map<string, BlobFacts>();
  const checked = new Set<string>();
  const markers: (() => Promise<void>)[] = [];
  for (const s of plan.steps) {
    if (s.kind !== 'verify') continue;
    step('verify', s.layer.digest);
    const f = await readBlobFacts(s.layer);
    facts.set(s.layer.digest, f);
    if (await verifyLayer(s.layer, f, { verifiedDir: paths.verified, log, kernelChecksTree: dm, pendingWrites: markers, ...(opts.signal ? { signal: opts.signal } : {}) })) checked.add(s.layer.digest);
  }

  await ensureDir(paths.base);
  await using _lock = await acquireLock(paths.lock, { wait: true, busyCode: 'ATOMFS_BUSY', ...(opts.signal ? { signal: opts.signal } : {}) });
  // Read once: the lock keeps other atomfs calls out, and our own steps only add mounts below mounts/.
  const mi = await readMountInfo();
  const existing = mountAt(mi, plan.dest);
  if (existing !== undefined) {
    if (sameOverlay(existing, overlay.lowerDirs, overlay.upperDir)) {
      log.info('already mounted', { dest: plan.dest });
      return { target: plan.target, dest: plan.dest, writable: plan.writable, alreadyMounted: true, layers: [] };
    }
    throw new MosError({ code: 'ATOMFS_BUSY', subject: plan.dest, message: `something else is mounted here (${existing.fsType})`, hint: 'unmount it first (mosctl umount --dest …)' });
  }
  if (overlay.upperDir !== undefined && mi.some((e) => mountOption(e.superOptions, 'upperdir') === overlay.upperDir)) {
    throw new MosError({ code: 'ATOMFS_BUSY', subject: `target ${plan.target}`, message: 'its writable root is already mounted elsewhere', hint: 'unmount the other mount of this target first' });
  }
  for (const w of markers) await w();

  const mountedNow: string[] = [];
  const layers: MountedLayer[] = [];
  // Layer mounts are independent: start each as soon as its dir exists, join them before the overlay.
  const pending: Promise<MountedLayer>[] = [];
  const joinLayers = async () => {
    const settled = await Promise.allSettled(pending.splice(0));
    for (const r of settled) if (r.status === 'fulfilled') layers.push(r.value);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    for (const s of plan.steps) {
      switch (s.kind) {
        case 'verify':
          break;
        case 'mkdir':
          if (s.fresh) await emptyDir(s.path, mi);
          await ensureDir(s.path);
          break;
        case 'mount-layer': {
          const found = mountAt(mi, s.layer.dir);
          if (found !== undefined) {
            if (found.fsType !== 'squashfs' && !found.fsType.startsWith('fuse.squashfuse')) {
              throw new MosError({ code: 'HOST_MOUNT_FAILED', subject: s.layer.dir, message: `a ${found.fsType} mount sits where layer ${s.layer.digest} belongs` });
            }
            layers.push({ digest: s.layer.digest, dir: s.layer.dir, via: 'shared', checked: checked.has(s.layer.digest) });
            break;
          }
          step('mount-layer', s.layer.digest);
          mountedNow.push(s.layer.dir);
          const layer = s.layer;
          pending.push(
            mountLayer(layer, facts.get(layer.digest)!, { mode, hostRoot, dm, log, signal: opts.signal }).then((via) => ({ digest: layer.digest, dir: layer.dir, via, checked: checked.has(layer.digest) })),
          );
          break;
        }
        case 'overlay':
          await joinLayers();
          step('overlay', s.dest);
          await mountOverlay({ target: s.dest, options: s.options, signal: opts.signal });
          break;
      }
    }
  } catch (e) {
    // Settle the layer mounts still running so the rollback sees them; `e` is the failure to report.
    await joinLayers().catch((r: unknown) => log.debug('another layer mount failed too', { error: String(r) }));
    await rollback(plan, mountedNow, log).catch((r: unknown) => log.warn('rollback after a failed mount was incomplete', { error: String(r) }));
    throw e;
  }
  log.info('mounted', { target: plan.target, dest: plan.dest, writable: plan.writable });
  return { target: plan.target, dest: plan.dest, writable: plan.writable, alreadyMounted: false, layers };
}

let caps: Promise<{ hostRoot: boolean; dm: boolean }> | undefined;
// Neither fact changes while a process runs: ask the kernel once.
async function hostCaps(mode: LayerMountMode): Promise<{ hostRoot: boolean; dm: boolean }> {
  caps ??= (async () => {
    const hostRoot = await isHostRoot();
    return { hostRoot, dm: hostRoot && (await hasDeviceMapper()) };
  })();
  const c = await caps;
  return { hostRoot: c.hostRoot, dm: c.dm && (mode === 'auto' || mode === 'dm-verity') };
}

function sameOverlay(e: MountInfoEntry, lowerDirs: readonly string[], upperDir: string | undefined): boolean {
  const lowers = overlayLowerDirs(e);
  return e.fsType === 'overlay' && lowers.length === lowerDirs.length && lowers.every((d, i) => d === lowerDirs[i]) && mountOption(e.superOptions, 'upperdir') === upperDir;
}

async function emptyDir(path: string, mi: readonly MountInfoEntry[]): Promise<void> {
  if (hasMountAtOrBelow(mi, path)) throw new MosError({ code: 'ATOMFS_BUSY', subject: path, message: 'a mount point is inside; not emptying it' });
  try {
    await rm(path, { recursive: true, force: true });
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot empty: ${describeSystemError(e)}`, cause: e });
  }
}

async function mountLayer(
  layer: PlannedLayer,
  f: BlobFacts,
  o: { mode: LayerMountMode; hostRoot: boolean; dm: boolean; log: Logger; signal: AbortSignal | undefined },
): Promise<MountedLayer['via']> {
  const signal = o.signal;
  if (o.mode === 'dm-verity' && (!o.dm || layer.rootHash === undefined)) throw verityRequired(layer, o.dm);
  if (o.dm && layer.rootHash !== undefined) {
    // Not reachable on machines without device-mapper (like our CI): the kernel then checks every block read.
    const dev = await openVerityDevice({ blob: layer.blob, name: `${splitDigest(layer.digest).hex}-verity`, rootHash: layer.rootHash, hashOffset: f.hashOffset, signal });
    await mountSquashfs({ source: dev, target: layer.dir, loop: false, signal });
    return 'dm-verity';
  }
  if (o.mode === 'loop' || (o.mode === 'auto' && o.hostRoot)) {
    try {
      await mountSquashfs({ source: layer.blob, target: layer.dir, loop: true, ...(f.hasVerityData ? { sizeLimit: f.hashOffset } : {}), signal });
      return 'loop';
    } catch (e) {
      if (o.mode === 'loop') throw e;
      o.log.warn('loop mount failed, falling back to squashfuse', { layer: layer.digest, error: e instanceof Error ? e.message : String(e) });
    }
  }
  o.log.warn('mounting layer with squashfuse: runtime verity is not enforced (the blob was checked before mounting)', { layer: layer.digest });
  await mountSquashfuse({ source: layer.blob, target: layer.dir, signal });
  return 'squashfuse';
}

function verityRequired(layer: PlannedLayer, dm: boolean): MosError {
  return new MosError({
    code: 'ATOMFS_VERITY_MISSING',
    subject: `layer ${layer.digest}`,
    message: !dm ? 'verity is required but this kernel offers no device-mapper (dm_mod, dm_verity)' : 'verity is required but the layer has no root hash',
    hint: !dm ? 'load dm_mod and dm_verity (the initrd does), or mount without --require-verity' : 'rebuild the image with mosb image build (it adds verity data)',
  });
}

async function rollback(plan: MountPlan, mountedNow: readonly string[], log: Logger): Promise<void> {
  const paths = atomfsPaths(plan.scratchDir);
  await releaseUnusedAtoms(paths, [...mountedNow, ...plan.layers.map((l) => l.dir), paths.workaround], { log });
  const w = plan.steps.find((s) => s.kind === 'overlay');
  if (w?.kind === 'overlay' && w.upperDir !== undefined && w.workDir !== undefined) {
    const mi = await readMountInfo();
    if (mountAt(mi, plan.dest) === undefined) await removeWritableDirs([w.upperDir, w.workDir], writablePaths(plan.scratchDir, plan.target).dir);
  }
}
