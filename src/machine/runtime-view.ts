import { mountAt, readFileLimited, readMountInfo } from '../host/index.js';
import { currentGeneration, readGeneration } from '../config/index.js';
import { MAX_MANIFEST_BYTES, imageContentBytes, layoutBlobPath, parseImageManifest } from '../oci/index.js';
import { BOOTKIT_TARGET } from '../protocol/index.js';
import { containerState, type ContainerStateName } from '../runtime/index.js';
import { systemPaths, targetPaths } from './paths.js';
import { realRoot } from './target-root.js';
import { status, type StatusResult } from './status.js';
import { bootStatus, type BootStatus } from './assessment.js';
import { readTracked } from './tracked.js';
import { readTargetRecord } from './state-file.js';
import type { Digest } from '../base/index.js';

/** What is live for one target right now. */
export interface TargetRuntime {
  readonly name: string;
  /** fs-only: mounted at mnt/atom/T; container: its root is mounted. */
  readonly mounted: boolean;
  /** Container state from LXC; absent for other kinds. */
  readonly state?: ContainerStateName;
  readonly pid?: number;
}

/** Status plus what is mounted and running (needs /proc and lxc-info; read-only). */
export interface LiveStatus extends StatusResult {
  readonly runtime: readonly TargetRuntime[];
}

/** Adds the mounted/running view to a status result. */
export async function withRuntime(root: string, status: StatusResult): Promise<LiveStatus> {
  const abs = await realRoot(root).catch(() => root);
  const mounts = await readMountInfo();
  const runtime: TargetRuntime[] = [];
  for (const t of status.targets) {
    const p = targetPaths(abs, t.name);
    if (t.service_type === 'container') {
      const s = await containerState({ name: t.name, lxcPath: p.lxcPath }).catch(() => undefined);
      runtime.push({ name: t.name, mounted: mountAt(mounts, p.containerRoot) !== undefined, ...(s ? { state: s.state } : {}), ...(s?.pid ? { pid: s.pid } : {}) });
    } else if (t.service_type === 'fs-only') {
      runtime.push({ name: t.name, mounted: mountAt(mounts, p.fsOnlyDest) !== undefined });
    } else {
      runtime.push({ name: t.name, mounted: false });
    }
  }
  return { ...status, runtime };
}

/** A generation by number and commit. */
export interface GenerationPointer {
  readonly generation: number;
  readonly commit: string;
}

/** What it takes to make a target run what is installed: nothing, `activate -t T` (start or restart), or a reboot (hostfs). */
export type ApplyAction = 'none' | 'activate' | 'restart' | 'reboot';

/** One target: what is installed against what runs now. */
export interface TargetState {
  readonly name: string;
  readonly service_type: string;
  readonly installed: { readonly version: string; readonly digest: string };
  /** Bytes of the image (config and layers) in the store; absent when its manifest is not there. */
  readonly imageBytes?: number;
  /**
   * What is live now: the booted hostfs, a running container, a mounted fs-only target. Absent when
   * nothing is; `digest` absent when what is live cannot be told (mounted before mosctl recorded it,
   * or a system not booted by a mosctl initrd).
   */
  readonly running?: { readonly version?: string; readonly digest?: string };
  readonly apply: ApplyAction;
}

/** bootc's status: what runs, what is staged, where a rollback goes, and what each target needs. */
export interface SystemState {
  /** The generation the running system was assembled from (absent when not booted by a mosctl initrd). */
  readonly booted?: GenerationPointer;
  /** The current generation when it is not the booted one: committed, boots next. */
  readonly staged?: GenerationPointer;
  /** Where a failed boot or `mosctl rollback` goes: the good generation, else the one before. */
  readonly rollback?: GenerationPointer;
  /** hostfs of the current generation is not the one running. */
  readonly rebootRequired: boolean;
  readonly targets: readonly TargetState[];
}

/** The status model: what `mosctl status --json` prints and `GET /v1/status` returns. */
export interface StatusModel extends LiveStatus {
  readonly apiVersion: 'mosctl/v1';
  readonly kind: 'Status';
  /** What the system is told to be: the source it tracks and its current generation. */
  readonly spec: { readonly source?: string; readonly generation: number; readonly commit: string };
  readonly status: SystemState;
  /** Boot assessment of the current generation (absent when its record cannot be read). */
  readonly boot?: BootStatus;
}


async function imageBytes(store: string, digest: string): Promise<number | undefined> {
  try {
    return imageContentBytes(parseImageManifest(await readFileLimited(layoutBlobPath(store, digest as Digest), MAX_MANIFEST_BYTES, { noFollow: true }), digest));
  } catch {
    return undefined;
  }
}


/** spec and status of the model, for `live` (the current generation, read with its runtime). */
async function systemState(root: string, live: LiveStatus, boot: BootStatus | undefined): Promise<Pick<StatusModel, 'spec' | 'status'>> {
  const abs = await realRoot(root).catch(() => root);
  const head: GenerationPointer = { generation: live.generation.number, commit: live.generation.commit };
  const booted = boot?.booted ? { generation: boot.booted.generation, commit: boot.booted.commit } : undefined;
  const staged = booted && booted.commit !== head.commit ? head : undefined;
  let rollback: GenerationPointer | undefined = boot?.good && boot.good.commit !== head.commit ? { generation: boot.good.generation, commit: boot.good.commit } : undefined;
  if (!rollback && head.generation > 1) {
    const prev = await readGeneration({ root, ref: head.generation - 1 }).catch(() => undefined);
    if (prev) rollback = { generation: prev.number, commit: prev.oid };
  }
  // The hostfs that runs is the booted generation's.
  let bootedHostfs: { version: string; digest: string } | undefined;
  if (booted) {
    const b = booted.commit === head.commit ? live : await status({ root, ref: booted.commit }).catch(() => undefined);
    const h = b?.targets.find((t) => t.service_type === 'hostfs');
    if (h) bootedHostfs = { version: h.version, digest: h.digest };
  }
  const store = systemPaths(abs).store;
  const targets: TargetState[] = [];
  for (const t of live.targets) {
    const rt = live.runtime.find((r) => r.name === t.name);
    const p = targetPaths(abs, t.name);
    let running: TargetState['running'];
    let apply: ApplyAction = 'none';
    if (t.service_type === 'hostfs') {
      running = bootedHostfs;
      if (bootedHostfs && bootedHostfs.digest !== t.digest) apply = 'reboot';
    } else {
      const live = t.service_type === 'container' ? rt?.state === 'RUNNING' : rt?.mounted === true;
      if (live) running = await readTargetRecord(t.service_type === 'container' ? p.stateFile : p.mountedRecord);
      // The bootkit is not a service: nothing to start unless someone mounted it (activate -t bootkit).
      apply = !live ? (t.name === BOOTKIT_TARGET ? 'none' : 'activate') : running?.digest === t.digest ? 'none' : 'restart';
    }
    const bytes = await imageBytes(store, t.digest);
    // Required fields first, then the optional ones: the order the API's serializer writes them in,
    // so that `status --json` prints the same bytes locally and through --server.
    targets.push({
      name: t.name,
      service_type: t.service_type,
      installed: { version: t.version, digest: t.digest },
      apply,
      ...(bytes !== undefined ? { imageBytes: bytes } : {}),
      ...(running ? { running } : {}),
    });
  }
  const tracked = await readTracked(root).catch(() => undefined);
  return {
    spec: { ...head, ...(tracked ? { source: tracked.source } : {}) },
    status: {
      rebootRequired: targets.some((t) => t.apply === 'reboot'),
      targets,
      ...(booted ? { booted } : {}),
      ...(staged ? { staged } : {}),
      ...(rollback ? { rollback } : {}),
    },
  };
}

const bootOf = async (root: string): Promise<{ boot?: BootStatus }> => {
  const boot = await bootStatus(root).catch(() => undefined);
  return boot ? { boot } : {};
};

/** Reads the status model of generation `ref` (default current) with its live view. */
export async function statusModel(root: string, ref?: string | number): Promise<StatusModel> {
  const live = await withRuntime(root, await status({ root, ...(ref !== undefined ? { ref } : {}) }));
  const boot = ref === undefined ? await bootOf(root) : {};
  return { apiVersion: 'mosctl/v1', kind: 'Status', ...live, ...(await systemState(root, live, boot.boot)), ...boot };
}

/**
 * A reader of the status model that re-reads the config repository only when HEAD moved (a generation
 * is immutable, so its summary is cached by commit id); the live view is read every time. For a
 * long-running reader (the upgrade API), where a read costs ~10 ms and the HEAD check ~2 ms.
 */
export function cachedStatusModel(root: string): () => Promise<StatusModel> {
  let cached: { oid: string; status: StatusResult } | undefined;
  return async () => {
    const head = await currentGeneration({ root });
    if (cached?.oid !== head.oid) cached = { oid: head.oid, status: await status({ root, ref: head.oid }) };
    const live = await withRuntime(root, cached.status);
    const boot = await bootOf(root);
    return { apiVersion: 'mosctl/v1', kind: 'Status', ...live, ...(await systemState(root, live, boot.boot)), ...boot };
  };
}
