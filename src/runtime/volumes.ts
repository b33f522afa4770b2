import { chown, lstat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, describeSystemError } from '../base/index.js';
import { ensureDir, readMountInfo } from '../host/index.js';
import { idmapFor } from './idmap.js';
import type { MountSpec, UidMap } from './types.js';
import { checkPath } from './validate.js';

/** One storage item of the install manifest (mos's StorageItem; `size` in MiB is not enforced on directories). */
export interface VolumeItem {
  readonly label: string;
  readonly persistent: boolean;
  readonly nsgroup?: string;
  readonly size?: number;
}

export interface PrepareVolumesOptions {
  /** `<root>/storage`. */
  readonly storageDir: string;
  readonly items: readonly VolumeItem[];
  readonly idmaps: readonly UidMap[];
  /** True at boot: non-persistent volumes are emptied. Persistent volumes are never emptied. */
  readonly boot: boolean;
  /** Report what would be created and emptied; change nothing. */
  readonly dryRun?: boolean;
}

export interface VolumeResult {
  readonly label: string;
  readonly path: string;
  readonly persistent: boolean;
  readonly created: boolean;
  /** A non-persistent volume emptied for this boot. */
  readonly wiped: boolean;
  /** Owner of the volume root (the nsgroup's hostid, 0 for the host namespace). */
  readonly owner: number;
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Throws INPUT_INVALID unless `label` is one path component that cannot escape the storage dir. */
export function checkVolumeLabel(label: string, subject: string): void {
  if (!LABEL.test(label) || label === '.' || label === '..') {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `storage label ${JSON.stringify(label)} is not a plain name`, hint: 'use 1-64 letters, digits, "_", "." or "-"' });
  }
}

/**
 * Creates `storage/<label>` for every item, owned by its nsgroup's hostid (root for the host namespace).
 * Persistent volumes keep their content across boots and updates (Go mos deleted them); at boot
 * non-persistent ones start empty. Everything is validated before anything is touched; a volume with
 * something mounted inside is never emptied. Needs root for the ownership.
 */
export async function prepareVolumes(opts: PrepareVolumesOptions): Promise<VolumeResult[]> {
  const seen = new Set<string>();
  const plan = opts.items.map((it, i) => {
    const subject = `storage[${i}].label`;
    checkVolumeLabel(it.label, subject);
    if (seen.has(it.label)) throw new MosError({ code: 'INPUT_INVALID', subject, message: `storage label ${it.label} appears twice` });
    seen.add(it.label);
    return { it, path: join(opts.storageDir, it.label), owner: idmapFor(it.nsgroup, opts.idmaps, `storage[${i}].nsgroup`) ?? 0 };
  });
  if (!opts.dryRun) await ensureDir(opts.storageDir, 0o755);
  const mounts = await readMountInfo();
  const results: VolumeResult[] = [];
  for (const { it, path, owner } of plan) {
    const st = await lstat(path).catch(() => undefined);
    if (st && !st.isDirectory()) throw new MosError({ code: 'INPUT_INVALID', subject: path, message: 'exists and is not a directory', hint: 'move it away' });
    let wiped = false;
    if (opts.dryRun) {
      results.push({ label: it.label, path, persistent: it.persistent, created: !st, wiped: !!st && opts.boot && !it.persistent, owner });
      continue;
    }
    try {
      if (st && opts.boot && !it.persistent) {
        if (mounts.some((m) => m.mountPoint === path || m.mountPoint.startsWith(path + '/'))) {
          throw new MosError({ code: 'HOST_MOUNT_FAILED', subject: path, message: 'cannot empty a volume with something mounted in it', hint: 'stop the containers using it' });
        }
        await rm(path, { recursive: true });
        wiped = true;
      }
      const created = !st || wiped;
      if (created) await mkdir(path, { mode: 0o755 });
      await chown(path, owner, owner);
      results.push({ label: it.label, path, persistent: it.persistent, created: !st, wiped, owner });
    } catch (e) {
      if (e instanceof MosError) throw e;
      throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot prepare volume: ${describeSystemError(e)}`, cause: e });
    }
  }
  return results;
}

/**
 * The bind mounts of a target's storage references `{dest, label}` (pure): source `storage/<label>`,
 * dest absolute in the container. Throws INPUT_INVALID for an unknown label or a bad dest.
 */
export function volumeMounts(storageDir: string, refs: readonly { dest: string; label: string }[], items: readonly VolumeItem[], subject: string): MountSpec[] {
  return refs.map((r, i) => {
    checkVolumeLabel(r.label, `${subject}: storage[${i}].label`);
    if (!items.some((it) => it.label === r.label)) {
      throw new MosError({ code: 'INPUT_INVALID', subject: `${subject}: storage[${i}].label`, message: `no storage item is labelled ${r.label}` });
    }
    checkPath(r.dest, `${subject}: storage[${i}].dest`);
    return { source: join(storageDir, r.label), dest: r.dest, kind: 'dir' };
  });
}
