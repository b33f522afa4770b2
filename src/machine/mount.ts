import { MosError, isMosError, isTargetName, type Logger, type OnProgress } from '../base/index.js';
import { describePlan, mountImage, unmountImage, type MountedLayer, type UnmountImageResult } from '../atomfs/index.js';
import { currentGeneration, lockConfig } from '../config/index.js';
import { armWatchdog, chooseBootGeneration, failTrialNow, writeBootedRecord, type BootChoice } from './boot-choice.js';
import { exists, mountAt, readMountInfo } from '../host/index.js';
import { parseInstallManifest, type InstallTarget } from '../manifest/index.js';
import { openLayout, type RegistryAccess } from '../oci/index.js';
import { fetchInstall } from './fetch-install.js';
import { pullTargets } from './pull-targets.js';
import { systemPaths, targetPaths } from './paths.js';
import { planTargetRoot, readTargetImage, realDest, realRoot, type TargetImage } from './target-root.js';
import { loadAnchors, loadVerifiedSystem } from './trust-policy.js';

/** Options of {@link mountTarget}. */
export interface MountTargetOptions {
  readonly root: string;
  /** Target name; default the installed hostfs target. */
  readonly target?: string;
  /** Default `<root>/mnt/mos/<target>`. */
  readonly dest?: string;
  /** Read-only root; default false (writable, writes discarded at unmount). */
  readonly readonly?: boolean;
  /** Refuse layers without a verity root hash. */
  readonly requireVerity?: boolean;
  /** Manifest CA; default `<root>/factory/secure/manifestCA.pem`. */
  readonly capath?: string;
  /** Plan only: verify the config, read the image, return the steps; mount nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
  readonly signal?: AbortSignal;
}

/** What {@link mountTarget} did (or, with dryRun, would do). */
export interface MountTargetResult {
  readonly target: string;
  /** The image manifest digest the installed manifest pins. */
  readonly digest: string;
  readonly dest: string;
  readonly writable: boolean;
  readonly dryRun: boolean;
  readonly alreadyMounted: boolean;
  /** One line per plan step. */
  readonly steps: readonly string[];
  readonly layers: readonly MountedLayer[];
  /** create-boot-fs: the generation assembled. */
  readonly generation?: number;
}

/**
 * Mounts one installed target's image: the current generation is read and every install manifest in it
 * verified against the manifest CA, the target's image manifest is read from the store by its signed
 * digest, and its layers are assembled with atomfs (each checked before its first mount). Needs root.
 */
export async function mountTarget(opts: MountTargetOptions): Promise<MountTargetResult> {
  const root = await realRoot(opts.root);
  const sys = await loadVerifiedSystem(root, opts.capath, opts.now);
  const wanted = opts.target ?? sys.targets.find((t) => t.target.service_type === 'hostfs')?.target.service_name;
  const found = sys.targets.find((t) => t.target.service_name === wanted);
  if (wanted === undefined || found === undefined) {
    throw new MosError({
      code: 'SYSTEM_TARGET_UNKNOWN',
      subject: `target ${wanted ?? '(hostfs)'}`,
      message: wanted === undefined ? 'the installed system has no hostfs target' : 'is not in the installed system',
      hint: `installed targets: ${sys.targets.map((t) => t.target.service_name).join(', ') || '(none)'}`,
    });
  }
  const target = found.target;
  const store = systemPaths(root).store;
  const image = await readTargetImage(await openLayout(store, opts.log ? { log: opts.log } : {}), target, store);
  return mountImageAt(root, target, image, opts);
}

/** Options of {@link createBootFs}. */
export interface CreateBootFsOptions extends Omit<MountTargetOptions, 'target'> {
  /** Boot assessment (default true): count a try of a trial generation first, fall back when none is left. */
  readonly assess?: boolean;
  /** A watchdog device to arm for a trial boot (`/dev/watchdog`); `mosctl assess` pets and disarms it. */
  readonly watchdog?: string;
}

/** What create-boot-fs did: the mount, and the boot-assessment decision behind it. */
export interface CreateBootFsResult extends MountTargetResult {
  readonly boot?: BootChoice;
  /** The watchdog's timeout in seconds, when one was armed. */
  readonly watchdog?: { readonly device: string; readonly timeout?: number };
}

/**
 * The initrd's mount of hostfs: {@link mountTarget} on the hostfs target, default dest `/sysroot`, under
 * the config lock. With assessment on, a trial generation's try is counted (and fsync'd) before anything
 * is mounted, a trial out of tries falls back to the good generation, and a trial that cannot be
 * assembled fails at once and this same boot falls back. A refusal names the generation it was
 * assembling (the console line an operator reads at boot).
 */
export async function createBootFs(opts: CreateBootFsOptions): Promise<CreateBootFsResult> {
  const root = await realRoot(opts.root);
  const head = await currentGeneration({ root }).catch(() => undefined);
  if (head === undefined || opts.dryRun || opts.assess === false) return bootMount(root, opts, head?.number);
  await using _lock = await lockConfig(root, { wait: true, timeoutMs: 120_000, ...(opts.log ? { log: opts.log } : {}) });
  let choice = await chooseBootGeneration(root, { ...(opts.now ? { now: opts.now } : {}), ...(opts.log ? { log: opts.log } : {}) });
  let watchdog: CreateBootFsResult['watchdog'];
  if (choice.state === 'trying' && opts.watchdog !== undefined) {
    // A watchdog that cannot be armed costs the hang protection of this boot, never the boot.
    const device = opts.watchdog;
    watchdog = await armWatchdog(device).then(
      (timeout) => ({ device, ...optional('timeout', timeout) }),
      (e: unknown) => void opts.log?.warn(e instanceof MosError ? `${e.subject}: ${e.message}` : String(e)),
    ) ?? undefined;
  }
  let r: MountTargetResult;
  try {
    r = await bootMount(root, opts, choice.generation);
  } catch (e) {
    if (choice.state !== 'trying' || !isMosError(e)) throw e;
    const fell = await failTrialNow(root, choice, { check: 'create-boot-fs', reason: `${e.subject}: ${e.message}` }, opts);
    if (fell === undefined) throw e;
    opts.log?.warn(`generation ${choice.generation} cannot be assembled (${e.message}): falling back in this boot`);
    choice = fell;
    r = await bootMount(root, opts, choice.generation);
  }
  await writeBootedRecord(root, { ...choice, target: r.target, digest: r.digest, ...(watchdog ? { watchdog } : {}) });
  return { ...r, boot: choice, ...(watchdog ? { watchdog } : {}) };
}

const optional = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));

async function bootMount(root: string, opts: Omit<MountTargetOptions, 'target'>, generation: number | undefined): Promise<MountTargetResult> {
  try {
    const r = await mountTarget({ ...opts, root, dest: opts.dest ?? '/sysroot' });
    return generation === undefined ? r : { ...r, generation };
  } catch (e) {
    if (!isMosError(e) || generation === undefined) throw e;
    throw new MosError({ code: e.code, subject: `generation ${generation}`, hint: e.hint, message: e.subject !== undefined ? `${e.subject}: ${e.message}` : e.message, cause: e });
  }
}

/**
 * Unmounts a root mounted by {@link mountTarget} at `dest`, or at the default place of `target`
 * (`<root>/mnt/mos/<target>`, where `mount -t T` put it), releasing unused layers and writable dirs.
 * Idempotent. USAGE when neither or both are given.
 */
export async function umountTarget(opts: { root: string; dest?: string; target?: string; dryRun?: boolean; log?: Logger; signal?: AbortSignal }): Promise<UnmountImageResult & { readonly dryRun?: true }> {
  if ((opts.dest === undefined) === (opts.target === undefined)) {
    throw new MosError({ code: 'USAGE', message: 'name the mount by --dest DIR or by -t TARGET (one of them)', hint: 'mosctl umount -t hostfs' });
  }
  if (opts.target !== undefined && !isTargetName(opts.target)) {
    throw new MosError({ code: 'USAGE', subject: '-t', message: `${JSON.stringify(opts.target)} is not a target name` });
  }
  const root = await realRoot(opts.root);
  const dest = await realDest(opts.dest ?? targetPaths(root, opts.target!).mountDest);
  // A dry run: whether something is mounted there (what unmount would take down); nothing released.
  if (opts.dryRun) return { dest, unmounted: mountAt(await readMountInfo(), dest) !== undefined, releasedLayers: [], removedDirs: [], dryRun: true };
  return unmountImage({
    dest,
    scratchDir: systemPaths(root).scratch,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** Options of {@link mountRemote}: a target straight from a signed install manifest (live CD). */
export interface MountRemoteOptions extends Omit<MountTargetOptions, 'target'>, RegistryAccess {
  /** The install manifest reference (`host/name:tag`, `oci:DIR:TAG`). */
  readonly source: string;
  /** Default `livecd`, else `hostfs`, else the manifest's only target. */
  readonly target?: string;
}

/**
 * `mosctl mount SOURCE` on a machine with nothing installed (a live CD/USB): fetches the install
 * manifest and verifies it against the manifest CA like install does, pulls only the chosen target's
 * image into the store (verified), and mounts it. Refused on an installed system, whose state must only
 * change through install/update.
 */
export async function mountRemote(opts: MountRemoteOptions): Promise<MountTargetResult> {
  const root = await realRoot(opts.root);
  const { repoDir } = systemPaths(root);
  if (await exists(repoDir)) {
    throw new MosError({
      code: 'CONFIG_EXISTS',
      subject: opts.source,
      message: 'a system is installed here: mounting a remote manifest is only for machines with nothing installed',
      hint: 'mount an installed target with mosctl mount -t TARGET, or update to the new manifest',
    });
  }
  const anchors = await loadAnchors(root, opts.capath);
  const fetched = await fetchInstall({ ...opts, anchors, ...(opts.now ? { now: opts.now } : {}) });
  const manifest = parseInstallManifest(fetched.raw, `${opts.source}: install.json`);
  const targets = manifest.value.targets;
  const wanted = opts.target ?? (['livecd', 'hostfs'].find((n) => targets.some((x) => x.service_name === n)) ?? (targets.length === 1 ? targets[0]!.service_name : undefined));
  const target = targets.find((x) => x.service_name === wanted);
  if (!target) {
    throw new MosError({
      code: 'SYSTEM_TARGET_UNKNOWN',
      subject: `${opts.source}: target ${wanted ?? '(none given)'}`,
      message: wanted === undefined ? 'the manifest has several targets and none is livecd or hostfs' : 'is not in the install manifest',
      hint: `targets: ${targets.map((x) => x.service_name).join(', ')}; choose one with --target`,
    });
  }
  // A dry run reads the image manifest and config from the source and writes nothing, not even the store.
  let image: TargetImage;
  if (opts.dryRun) {
    image = await readTargetImage(fetched.imageSource(target.digest).store, target, systemPaths(root).store);
  } else {
    await pullTargets({ root, targets: [target], fetched, ...(opts.log ? { log: opts.log } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    image = await readTargetImage(await openLayout(systemPaths(root).store, opts.log ? { log: opts.log } : {}), target, systemPaths(root).store);
  }
  return mountImageAt(root, target, image, opts);
}

// Plans the mount of a read image at its destination and, unless a dry run, mounts it.
async function mountImageAt(root: string, target: InstallTarget, image: TargetImage, opts: Omit<MountTargetOptions, 'root' | 'target'>): Promise<MountTargetResult> {
  const dest = await realDest(opts.dest ?? targetPaths(root, target.service_name).mountDest);
  const plan = planTargetRoot({ root, name: target.service_name, image, dest, writable: !(opts.readonly ?? false), requireVerity: opts.requireVerity ?? false });
  const base = { target: target.service_name, digest: target.digest, dest, writable: plan.writable, steps: describePlan(plan) };
  if (opts.dryRun) return { ...base, dryRun: true, alreadyMounted: false, layers: [] };
  const res = await mountImage(plan, {
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    // Required verity means enforced verity: every read checked by the kernel, nothing else accepted.
    ...(opts.requireVerity ? { layerMount: 'dm-verity' as const } : {}),
  });
  return { ...base, dryRun: false, alreadyMounted: res.alreadyMounted, layers: res.layers };
}
