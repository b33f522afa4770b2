import { mountAt, readMountInfo } from '../host/index.js';
import { currentGeneration } from '../config/index.js';
import { containerState, type ContainerStateName } from '../runtime/index.js';
import { targetPaths } from './paths.js';
import { realRoot } from './target-root.js';
import { status, type StatusResult } from './status.js';
import { bootStatus, type BootStatus } from './assessment.js';

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

/** The status model: what `mosctl status --json` prints and `GET /v1/status` returns. */
export interface StatusModel extends LiveStatus {
  readonly apiVersion: 'mosctl/v1';
  readonly kind: 'Status';
  /** Boot assessment of the current generation (absent when its record cannot be read). */
  readonly boot?: BootStatus;
}

const bootOf = async (root: string): Promise<{ boot?: BootStatus }> => {
  const boot = await bootStatus(root).catch(() => undefined);
  return boot ? { boot } : {};
};

/** Reads the status model of generation `ref` (default current) with its live view. */
export async function statusModel(root: string, ref?: string | number): Promise<StatusModel> {
  const live = await withRuntime(root, await status({ root, ...(ref !== undefined ? { ref } : {}) }));
  return { apiVersion: 'mosctl/v1', kind: 'Status', ...live, ...(ref === undefined ? await bootOf(root) : {}) };
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
    return { apiVersion: 'mosctl/v1', kind: 'Status', ...(await withRuntime(root, cached.status)), ...(await bootOf(root)) };
  };
}
