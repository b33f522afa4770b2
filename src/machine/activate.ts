import { dirname } from 'node:path';
import { rm } from 'node:fs/promises';
import { MosError, isMosError, isTargetName, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { readGeneration } from '../config/index.js';
import { ensureDir, exists, mountAt, readMountInfo, statOrAbsent, writeFileAtomic } from '../host/index.js';
import type { InstallTarget } from '../manifest/index.js';
import {
  applyPortForwards, containerState, ensureSubordinateIds, idmapDefaults, idmapFor, prepareVolumes, probeHostFeatures,
  removePortForwards, renderLxcConfig, renderSystemdUnit, resolveSpecUser, shiftOwnership, startContainer, stopContainer, volumeMounts,
  type ContainerSpec, type ContainerStateName, type NetworkSpec,
} from '../runtime/index.js';
import { openExistingStore, openStore } from './store.js';
import { confinedTargetDirs, targetPaths, type TargetPaths } from './paths.js';
import { checkCommand } from './rootfs-path.js';
import { loadSystem, type LoadedSystem } from './load-system.js';
import { mountTargetRoot, mountedAsPlanned, planTargetRoot, readTargetImage, realRoot, unmountTargetRoot } from './target-root.js';
import { loadVerifiedSystem } from './trust-policy.js';
import { readTargetRecord } from './state-file.js';

export interface ActivateOptions {
  readonly root: string;
  readonly target: string;
  readonly capath?: string;
  readonly requireVerity?: boolean;
  /** Also write `<root>/etc/systemd/system/<T>.service` for a container target (hosts booted by systemd). */
  readonly systemd?: boolean;
  /** A system already loaded and verified (boot passes it to avoid re-verifying per target). */
  readonly system?: LoadedSystem;
  /** Verify and say what would happen (start, restart, nothing), writing and mounting nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
}

export interface ActivateResult {
  readonly target: string;
  readonly service_type: string;
  /** `started` (was not running), `restarted` (its image changed), `unchanged` (already running this digest). */
  readonly action: 'started' | 'restarted' | 'unchanged';
  readonly digest: string;
  /** fs-only: the mount point; container: its root. */
  readonly path: string;
  readonly state?: ContainerStateName;
  /** A dry run: `action` is what activate would do; nothing was written or mounted. */
  readonly dryRun?: true;
}

function findTarget(system: LoadedSystem, name: string): InstallTarget {
  const t = system.targets.find((x) => x.target.service_name === name)?.target;
  if (!t) {
    throw new MosError({
      code: 'SYSTEM_TARGET_UNKNOWN',
      subject: `target ${name}`,
      message: 'is not in the installed system',
      hint: `targets: ${system.targets.map((x) => x.target.service_name).join(', ') || '(none)'}`,
    });
  }
  return t;
}

/**
 * `mosctl activate -t T`: fs-only targets are mounted read-only at `mnt/atom/T`; container targets get a
 * fresh writable root and run under LXC. A target already running its current digest is left alone
 * (Go mos always restarts); one whose digest changed is stopped and started again. hostfs is the booted
 * root itself and changes only at the next boot.
 */
export async function activate(opts: ActivateOptions): Promise<ActivateResult> {
  const root = await realRoot(opts.root, isTargetName(opts.target) ? confinedTargetDirs(opts.target) : []);
  const log = opts.log ?? silentLogger;
  const system = opts.system ?? (await loadVerifiedSystem(root, opts.capath, opts.now));
  const target = findTarget(system, opts.target);
  if (target.service_type === 'hostfs') {
    throw new MosError({
      code: 'INPUT_INVALID',
      subject: `target ${target.service_name}`,
      message: 'hostfs is the booted root filesystem and cannot be activated while running',
      hint: 'it is assembled at boot by mosctl create-boot-fs; reboot to run a new hostfs',
    });
  }
  if (opts.dryRun) return planActivation(root, target, opts);
  const store = await openStore(root, log);
  const image = await readTargetImage(store, target, store.dir);
  const paths = targetPaths(root, target.service_name);
  const base = { target: target.service_name, service_type: target.service_type, digest: target.digest };
  if (target.service_type === 'fs-only') {
    const plan = planTargetRoot({ root, name: target.service_name, image, dest: paths.fsOnlyDest, writable: false, ...verity(opts) });
    const record = JSON.stringify({ digest: target.digest, version: target.version, mounted: new Date().toISOString() }) + '\n';
    if (await mountedAsPlanned(plan)) {
      if ((await readTargetRecord(paths.mountedRecord)).digest !== target.digest) await writeMountedRecord(paths.mountedRecord, record);
      return { ...base, action: 'unchanged', path: paths.fsOnlyDest };
    }
    const was = await unmountTargetRoot(root, paths.fsOnlyDest, log);
    await rm(paths.mountedRecord, { force: true });
    // The mount plan makes the mount point once every layer checked out: a refusal creates nothing.
    await mountTargetRoot({ root, name: target.service_name, image, dest: paths.fsOnlyDest, writable: false, log, ...verity(opts), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    await writeMountedRecord(paths.mountedRecord, record);
    return { ...base, action: was ? 'restarted' : 'started', path: paths.fsOnlyDest };
  }

  // container
  const ref = { name: target.service_name, lxcPath: paths.lxcPath };
  if (opts.systemd) {
    await ensureDir(dirname(paths.systemdUnit));
    await writeFileAtomic(paths.systemdUnit, renderSystemdUnit(target.service_name, { lxcPath: paths.lxcPath }));
  }
  const before = await containerState(ref);
  const recorded = await readTargetRecord(paths.stateFile);
  if (before.state === 'RUNNING' && recorded.digest === target.digest) {
    return { ...base, action: 'unchanged', path: paths.containerRoot, state: 'RUNNING' };
  }
  const wasRunning = before.state === 'RUNNING';
  await stopContainer({ ...ref, log });
  await removePortForwards({ name: target.service_name });
  await unmountTargetRoot(root, paths.containerRoot, log);
  // The unmount removed the writable root's upper dir, so the shift record describes a tree that is
  // gone. Kept, it let the fresh root skip its shift whenever the new overlay got the old one's device
  // and inode numbers (both are reused): the container root could then not create its mount points.
  await rm(paths.shiftRecord, { force: true });

  const spec = await containerSpec(system, target, image.config, paths);
  await mountTargetRoot({ root, name: target.service_name, image, dest: paths.containerRoot, writable: true, log, ...verity(opts), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  try {
    await checkCommand(paths.containerRoot, spec.command, spec.env, target.service_name);
    if (spec.idmap) {
      await ensureSubordinateIds([spec.idmap]);
      await shiftOwnership({ dir: paths.containerRoot, hostid: spec.idmap.hostid, range: spec.idmap.range, recordFile: paths.shiftRecord });
    }
    await ensureDir(dirname(paths.logFile));
    const config = renderLxcConfig(await resolveSpecUser(spec), await probeHostFeatures());
    const status = await startContainer({ ...ref, config, log });
    if (spec.network.type === 'simple' && (spec.network.ports?.length ?? 0) > 0) await applyPortForwards({ name: target.service_name, network: spec.network });
    await writeFileAtomic(paths.stateFile, JSON.stringify({ digest: target.digest, version: target.version, started: new Date().toISOString() }) + '\n');
    return { ...base, action: wasRunning ? 'restarted' : 'started', path: paths.containerRoot, state: status.state };
  } catch (e) {
    // Leave nothing half-started: the root goes with the failed start.
    await stopContainer({ ...ref, log }).catch(() => {});
    await unmountTargetRoot(root, paths.containerRoot, log).catch(() => {});
    throw e;
  }
}

function verity(opts: { requireVerity?: boolean }): { requireVerity?: boolean } {
  return opts.requireVerity ? { requireVerity: true } : {};
}

/**
 * What activate would do, read-only: the image and every layer must be in the store at their size (the
 * store is not created, nothing is hashed or mounted), then start, restart or nothing, decided as
 * activate decides.
 */
async function planActivation(root: string, target: InstallTarget, opts: ActivateOptions): Promise<ActivateResult> {
  const store = await openExistingStore(root, opts.log);
  if (!store) throw new MosError({ code: 'SYSTEM_INTEGRITY', subject: `target ${target.service_name}`, message: 'the image store is missing', hint: 'run mosctl update again with the same source' });
  const image = await readTargetImage(store, target, store.dir);
  for (const l of image.layers) {
    const st = await statOrAbsent(l.path);
    if (!st?.isFile()) {
      throw new MosError({ code: 'SYSTEM_INTEGRITY', subject: `target ${target.service_name}`, message: `layer ${l.digest} is not in the store`, hint: 'run mosctl fsck --repair' });
    }
  }
  const paths = targetPaths(root, target.service_name);
  const base = { target: target.service_name, service_type: target.service_type, digest: target.digest, dryRun: true as const };
  if (target.service_type === 'fs-only') {
    const plan = planTargetRoot({ root, name: target.service_name, image, dest: paths.fsOnlyDest, writable: false, ...verity(opts) });
    if (await mountedAsPlanned(plan)) return { ...base, action: 'unchanged', path: paths.fsOnlyDest };
    const mounted = mountAt(await readMountInfo(), paths.fsOnlyDest) !== undefined;
    return { ...base, action: mounted ? 'restarted' : 'started', path: paths.fsOnlyDest };
  }
  const before = await containerState({ name: target.service_name, lxcPath: paths.lxcPath });
  const running = before.state === 'RUNNING';
  if (running && (await readTargetRecord(paths.stateFile)).digest === target.digest) return { ...base, action: 'unchanged', path: paths.containerRoot, state: 'RUNNING' };
  return { ...base, action: running ? 'restarted' : 'started', path: paths.containerRoot, state: before.state };
}

/** What `status` compares with the installed digest: written once the mount is up. */
async function writeMountedRecord(file: string, record: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFileAtomic(file, record);
}


async function containerSpec(
  system: LoadedSystem,
  target: InstallTarget,
  config: { entrypoint: readonly string[]; cmd: readonly string[]; env: readonly string[]; workingDir?: string; user?: string },
  paths: TargetPaths,
): Promise<ContainerSpec> {
  const subject = `target ${target.service_name}`;
  const command = [...config.entrypoint, ...config.cmd];
  if (command.length === 0) {
    throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'its image has no Entrypoint or Cmd to run', hint: 'build it with mosb image build --entrypoint/--cmd' });
  }
  const maps = system.sys.uidmaps ?? [];
  const hostid = idmapFor(target.nsgroup, maps, subject);
  const { range } = await idmapDefaults();
  const items = system.sys.storage ?? [];
  const refs = target.storage ?? [];
  if (refs.length > 0) {
    const used = items.filter((it) => refs.some((r) => r.label === it.label));
    await prepareVolumes({ storageDir: paths.storageDir, items: used, idmaps: maps, boot: false });
  }
  const network: NetworkSpec = {
    type: target.network.type,
    ...(target.network.ipv4 ? { ipv4: target.network.ipv4 } : {}),
    ...(target.network.ipv6 ? { ipv6: target.network.ipv6 } : {}),
    ...(target.network.ports?.length ? { ports: target.network.ports } : {}),
  };
  return {
    name: target.service_name,
    rootfs: paths.containerRoot,
    command,
    env: config.env,
    ...(config.workingDir ? { workingDir: config.workingDir } : {}),
    ...(config.user ? { user: config.user } : {}),
    ...(hostid !== undefined ? { idmap: { hostid, range } } : {}),
    network,
    mounts: volumeMounts(paths.storageDir, refs, items, subject),
    logFile: paths.logFile,
  };
}

export interface DeactivateOptions {
  readonly root: string;
  readonly target: string;
  /** Say what would be stopped and unmounted; touch nothing. */
  readonly dryRun?: boolean;
  readonly log?: Logger;
}

export interface DeactivateResult {
  readonly target: string;
  readonly stopped: boolean;
  readonly unmounted: boolean;
  /** A dry run: what deactivate would stop and unmount. */
  readonly dryRun?: true;
}

/**
 * `mosctl deactivate -t T`: stop a container target (and unmount its root) or unmount an fs-only target.
 * Works from what is running, so a target an update removed can still be stopped. Idempotent.
 */
export async function deactivate(opts: DeactivateOptions): Promise<DeactivateResult> {
  const root = await realRoot(opts.root, isTargetName(opts.target) ? confinedTargetDirs(opts.target) : []);
  const log = opts.log ?? silentLogger;
  if (!isTargetName(opts.target)) {
    throw new MosError({ code: 'INPUT_INVALID', subject: `target ${JSON.stringify(opts.target)}`, message: 'is not a valid target name' });
  }
  const paths = targetPaths(root, opts.target);
  const ref = { name: opts.target, lxcPath: paths.lxcPath };
  if (opts.dryRun) {
    const mounts = await readMountInfo();
    const running = (await containerState(ref).catch(() => undefined))?.state === 'RUNNING';
    const mounted = [paths.containerRoot, paths.fsOnlyDest].some((d) => mountAt(mounts, d) !== undefined);
    return { target: opts.target, stopped: running, unmounted: mounted, dryRun: true };
  }
  const { wasRunning } = await stopContainer({ ...ref, log });
  await removePortForwards({ name: opts.target }).catch((e: unknown) => {
    if (!isMosError(e)) throw e;
    log.warn(`could not remove port forwards: ${e.message}`);
  });
  const a = await unmountTargetRoot(root, paths.containerRoot, log);
  await rm(paths.shiftRecord, { force: true }); // it described the writable root just removed
  const b = await unmountTargetRoot(root, paths.fsOnlyDest, log);
  await rm(paths.mountedRecord, { force: true });
  if (await exists(paths.stateFile)) await writeFileAtomic(paths.stateFile, JSON.stringify({ stopped: new Date().toISOString() }) + '\n');
  if (!wasRunning && !a && !b) {
    // Not running anywhere: say so if the name is unknown to the system too, else it is a no-op.
    try {
      const system = await loadSystem(await readGeneration({ root }));
      findTarget(system, opts.target);
    } catch (e) {
      if (isMosError(e, 'SYSTEM_TARGET_UNKNOWN')) throw e;
    }
  }
  return { target: opts.target, stopped: wasRunning, unmounted: a || b };
}
