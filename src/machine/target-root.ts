import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { MosError, type Digest, type Logger, type OnProgress } from '../base/index.js';
import { mountImage, planMount, unmountImage, type LayerInput, type MountImageResult, type MountPlan } from '../atomfs/index.js';
import { fileError, mountAt, overlayLowerDirs, readMountInfo, refuseOutwardSymlinks } from '../host/index.js';
import type { InstallTarget } from '../manifest/index.js';
import { layoutBlobPath, type ContentSource, type ImageManifest } from '../oci/index.js';
import { CONFINED_DIRS, confinedTargetDirs, systemPaths } from './paths.js';
import { checkSquashfsImage, targetDescriptor } from './store.js';

/** The system root with symlinks resolved: the kernel reports mount points that way. */
export async function realRoot(root: string, targetRels: readonly string[] = []): Promise<string> {
  let real: string;
  try {
    real = await realpath(root);
  } catch (e) {
    throw fileError(e, root, 'system root');
  }
  await refuseOutwardSymlinks(real, [...CONFINED_DIRS, ...targetRels]);
  return real;
}

/** A mount destination with symlinks resolved (or its parent's, when it does not exist yet). */
export async function realDest(dest: string): Promise<string> {
  if (!isAbsolute(dest)) throw new MosError({ code: 'INPUT_INVALID', subject: dest, message: 'mount destination must be an absolute path' });
  try {
    return await realpath(dest);
  } catch {
    const parent = dirname(dest);
    return parent === dest ? dest : join(await realDest(parent), basename(dest));
  }
}

/** The OCI image config fields a container target uses. */
export interface ImageRunConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
}

/** A target's image read from the store: its layers as atomfs inputs and its run config. */
export interface TargetImage {
  readonly manifest: ImageManifest;
  readonly layers: readonly LayerInput[];
  readonly config: ImageRunConfig;
}

/**
 * Reads a target's image, checked against the signed digest and size, from `store`: the machine's store,
 * or (a dry run of a live-CD mount, which writes nothing) the remote source. Layer paths are those of the
 * layout at `storeDir`, where the layers are or will be.
 */
export async function readTargetImage(store: ContentSource, target: InstallTarget, storeDir: string): Promise<TargetImage> {
  const blobPath = (d: Digest) => layoutBlobPath(storeDir, d);
  let bytes: Uint8Array;
  try {
    bytes = await store.fetchBytes(targetDescriptor(target));
  } catch (e) {
    throw new MosError({
      code: 'SYSTEM_INTEGRITY',
      subject: `target ${target.service_name} (${target.digest})`,
      message: `its image is missing or damaged in the store: ${(e as Error).message}`,
      hint: 'run mosctl fsck, then update again from the registry',
      cause: e,
    });
  }
  const manifest = checkSquashfsImage(bytes, target);
  const layers = manifest.layers.map((l) => ({
    path: blobPath(l.digest),
    digest: l.digest,
    mediaType: l.mediaType,
    ...(l.annotations ? { annotations: l.annotations } : {}),
  }));
  const cfgBytes = await store.fetchBytes(manifest.config);
  return { manifest, layers, config: parseRunConfig(cfgBytes, target.service_name) };
}

function parseRunConfig(bytes: Uint8Array, name: string): ImageRunConfig {
  let doc: { config?: Record<string, unknown> } | undefined;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { config?: Record<string, unknown> };
  } catch {
    throw new MosError({ code: 'IMAGE_INVALID', subject: `target ${name}: image config`, message: 'is not JSON' });
  }
  const c = doc?.config ?? {};
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    entrypoint: strings(c['Entrypoint']),
    cmd: strings(c['Cmd']),
    env: strings(c['Env']),
    ...(typeof c['WorkingDir'] === 'string' && c['WorkingDir'] ? { workingDir: c['WorkingDir'] } : {}),
    ...(typeof c['User'] === 'string' && c['User'] ? { user: c['User'] } : {}),
  };
}

/** Options of mountTargetRoot. */
export interface MountTargetRootOptions {
  readonly root: string;
  readonly name: string;
  readonly image: TargetImage;
  readonly dest: string;
  readonly writable: boolean;
  readonly requireVerity?: boolean;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
}

/** Plans a target root mount (pure). */
export function planTargetRoot(opts: MountTargetRootOptions): MountPlan {
  return planMount({
    target: opts.name,
    layers: opts.image.layers,
    dest: opts.dest,
    scratchDir: systemPaths(opts.root).scratch,
    writable: opts.writable,
    requireVerity: opts.requireVerity ?? false,
  });
}

/** Mounts a target's verified layers as an overlay root at `dest`. */
export async function mountTargetRoot(opts: MountTargetRootOptions): Promise<MountImageResult> {
  // The shared directories were checked by realRoot, which every caller ran; these are this target's.
  await refuseOutwardSymlinks(opts.root, confinedTargetDirs(opts.name));
  return mountImage(planTargetRoot(opts), { ...(opts.log ? { log: opts.log } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
}

/** Unmounts a target root (idempotent). */
export async function unmountTargetRoot(root: string, dest: string, log?: Logger): Promise<boolean> {
  const r = await unmountImage({ dest, scratchDir: systemPaths(root).scratch, ...(log ? { log } : {}) });
  return r.unmounted;
}

/**
 * True when `dest` currently holds exactly the overlay `plan` would mount (same layer dirs in the same
 * order): what lets activate skip a restart when a target's image did not change.
 */
export async function mountedAsPlanned(plan: MountPlan): Promise<boolean> {
  const entry = mountAt(await readMountInfo(), plan.dest);
  if (!entry || entry.fsType !== 'overlay') return false;
  const want = plan.steps.find((s) => s.kind === 'overlay');
  if (want?.kind !== 'overlay') return false;
  const have = overlayLowerDirs(entry);
  return JSON.stringify(have) === JSON.stringify(want.lowerDirs);
}
