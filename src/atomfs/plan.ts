import { isAbsolute, join } from 'node:path';
import { MosError, isTargetName, parseDigest, splitDigest, type Digest } from '../base/index.js';
import { isSquashfsMediaType, verityRootHashOf } from '../squashfs/index.js';
import { MAX_MOUNT_OPTIONS_BYTES, OVERLAY_OPTIONS } from './constants.js';
import { atomfsPaths, writablePaths } from './paths.js';

/** One image layer as the system layer hands it over: a verified store blob and its descriptor facts. */
export interface LayerInput {
  /** Absolute path of the blob file. */
  readonly path: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A layer as planned: where its blob is, where its shared read-only mount goes, its verity root hash. */
export interface PlannedLayer {
  readonly digest: Digest;
  readonly blob: string;
  /** `<scratch>/atomfs/mounts/<hex>` */
  readonly dir: string;
  readonly rootHash: string | undefined;
}

/** One side effect of a mount, in order. The same list is what `--dry-run` prints. */
export type MountStep =
  | { readonly kind: 'verify'; readonly layer: PlannedLayer }
  | { readonly kind: 'mkdir'; readonly path: string; /** Empty it first (a writable root starts clean). */ readonly fresh: boolean }
  | { readonly kind: 'mount-layer'; readonly layer: PlannedLayer }
  | { readonly kind: 'overlay'; readonly dest: string; readonly lowerDirs: readonly string[]; readonly upperDir?: string; readonly workDir?: string; readonly options: string };

/** What {@link planMount} returns and {@link mountImage} applies. */
export interface MountPlan {
  readonly target: string;
  readonly dest: string;
  readonly scratchDir: string;
  readonly writable: boolean;
  /** Layers bottom first (OCI order), duplicates removed. */
  readonly layers: readonly PlannedLayer[];
  readonly steps: readonly MountStep[];
}

/** Input of {@link planMount}. */
export interface PlanMountOptions {
  /** Target name; a writable root keeps its upper and work dirs in `<scratchDir>/<target>/`. */
  readonly target: string;
  /** Layers in OCI order, bottom first. */
  readonly layers: readonly LayerInput[];
  /** Absolute mount point of the assembled root. */
  readonly dest: string;
  /** Absolute `<root>/scratch-writes`. */
  readonly scratchDir: string;
  readonly writable: boolean;
  /** Refuse layers without a verity root hash (ATOMFS_VERITY_MISSING). Default false. */
  readonly requireVerity?: boolean;
}

const ROOT_HASH_RE = /^(?:[0-9a-f]{64}|[0-9a-f]{128})$/;
// Overlay splits its options at ',' and lowerdir at ':'; refuse rather than escape such scratch paths.
const UNSAFE_PATH_RE = /[,:\\\s]/;

/**
 * Plans the mount of one image (pure: no disk, no root). Throws before anything is mounted: an unknown
 * layer media type (ATOMFS_LAYER_UNSUPPORTED), a missing root hash under `requireVerity`
 * (ATOMFS_VERITY_MISSING), a malformed root hash (IMAGE_INVALID) or an option string past the kernel's
 * 4096 bytes (ATOMFS_OPTIONS_TOO_LONG).
 */
export function planMount(opts: PlanMountOptions): MountPlan {
  const { target, dest, scratchDir, writable } = opts;
  if (!isTargetName(target) || target === 'atomfs') {
    throw new MosError({ code: 'INPUT_INVALID', subject: `target ${JSON.stringify(target)}`, message: 'not a valid target name', hint: 'use lowercase letters, digits, ".", "_" and "-" (no "..")' });
  }
  if (!isAbsolute(dest)) throw new MosError({ code: 'INPUT_INVALID', subject: dest, message: 'mount destination must be an absolute path' });
  if (!isAbsolute(scratchDir) || UNSAFE_PATH_RE.test(scratchDir)) {
    throw new MosError({ code: 'INPUT_INVALID', subject: scratchDir, message: 'scratch dir must be an absolute path without ",", ":", "\\" or spaces (overlay option syntax)' });
  }
  if (opts.layers.length === 0) throw new MosError({ code: 'IMAGE_INVALID', subject: `target ${target}`, message: 'the image has no layers' });

  const paths = atomfsPaths(scratchDir);
  const planned = opts.layers.map((l, i) => planLayer(l, i, paths.mounts, opts.requireVerity ?? false));
  // A layer listed twice: the topmost copy shadows everything the lower one could show, so drop the lower.
  const layers = planned.filter((l, i) => !planned.slice(i + 1).some((u) => u.digest === l.digest));

  const steps: MountStep[] = layers.map((layer) => ({ kind: 'verify', layer }));
  steps.push({ kind: 'mkdir', path: paths.mounts, fresh: false });
  for (const layer of layers) steps.push({ kind: 'mkdir', path: layer.dir, fresh: false }, { kind: 'mount-layer', layer });

  const lowerDirs = layers.map((l) => l.dir).reverse(); // overlay lists top first
  let overlay: MountStep;
  if (writable) {
    const w = writablePaths(scratchDir, target);
    steps.push({ kind: 'mkdir', path: w.dir, fresh: false }, { kind: 'mkdir', path: w.upper, fresh: true }, { kind: 'mkdir', path: w.work, fresh: true });
    const options = [`lowerdir=${lowerDirs.join(':')}`, `upperdir=${w.upper}`, `workdir=${w.work}`, ...OVERLAY_OPTIONS].join(',');
    overlay = { kind: 'overlay', dest, lowerDirs, upperDir: w.upper, workDir: w.work, options };
  } else {
    if (lowerDirs.length === 1) {
      steps.push({ kind: 'mkdir', path: paths.workaround, fresh: false });
      lowerDirs.push(paths.workaround);
    }
    overlay = { kind: 'overlay', dest, lowerDirs, options: [`lowerdir=${lowerDirs.join(':')}`, ...OVERLAY_OPTIONS].join(',') };
  }
  if (Buffer.byteLength(overlay.options) >= MAX_MOUNT_OPTIONS_BYTES) {
    throw new MosError({
      code: 'ATOMFS_OPTIONS_TOO_LONG',
      subject: `target ${target}`,
      message: `overlay options are ${Buffer.byteLength(overlay.options)} bytes for ${layers.length} layers; the kernel takes fewer than ${MAX_MOUNT_OPTIONS_BYTES}`,
      hint: 'use a shorter --root path or an image with fewer layers',
    });
  }
  steps.push({ kind: 'mkdir', path: dest, fresh: false }, overlay);
  return { target, dest, scratchDir, writable, layers, steps };
}

function planLayer(l: LayerInput, i: number, mountsDir: string, requireVerity: boolean): PlannedLayer {
  const digest = parseDigest(l.digest, `layers[${i}].digest`);
  const subject = `layer ${digest}`;
  if (!isSquashfsMediaType(l.mediaType)) {
    throw new MosError({
      code: 'ATOMFS_LAYER_UNSUPPORTED',
      subject,
      message: `media type ${JSON.stringify(l.mediaType)} is not a squashfs layer`,
      hint: 'atomfs mounts only squashfs layers; rebuild the image with `mosb image build`',
    });
  }
  if (!isAbsolute(l.path)) throw new MosError({ code: 'INPUT_INVALID', subject, message: `blob path ${JSON.stringify(l.path)} is not absolute` });
  const rootHash = verityRootHashOf(l.annotations);
  if (rootHash !== undefined && !ROOT_HASH_RE.test(rootHash)) {
    throw new MosError({ code: 'IMAGE_INVALID', subject, message: `verity root hash annotation ${JSON.stringify(rootHash.slice(0, 140))} is not lowercase hex` });
  }
  if (rootHash === undefined && requireVerity) {
    throw new MosError({
      code: 'ATOMFS_VERITY_MISSING',
      subject,
      message: 'layer has no verity root hash annotation and --require-verity is set',
      hint: 'rebuild the image with verity data (`mosb image build`), or mount without --require-verity',
    });
  }
  return { digest, blob: l.path, dir: join(mountsDir, splitDigest(digest).hex), rootHash };
}

/** One line per step, for `--dry-run` and logs. */
export function describePlan(plan: MountPlan): string[] {
  return plan.steps.map((s) => {
    switch (s.kind) {
      case 'verify':
        return s.layer.rootHash ? `verify ${s.layer.digest} (verity ${s.layer.rootHash})` : `verify ${s.layer.digest} (sha256)`;
      case 'mkdir':
        return `mkdir ${s.path}${s.fresh ? ' (emptied first)' : ''}`;
      case 'mount-layer':
        return `mount ${s.layer.blob} on ${s.layer.dir} (squashfs, ro, unless already mounted)`;
      case 'overlay':
        return `mount -t overlay overlay -o ${s.options} ${s.dest}`;
    }
  });
}
