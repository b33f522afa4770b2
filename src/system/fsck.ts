import { stat } from 'node:fs/promises';
import { MosError, isDigest, silentLogger, type Logger } from '../base/index.js';
import { readGeneration } from '../config/index.js';
import { fsck, openLayout, type FsckResult } from '../oci/index.js';
import { storeDir } from './gc.js';
import { loadSystem } from './status.js';

/** Options of `systemFsck` (`mosctl fsck`). */
export interface SystemFsckOptions {
  readonly root: string;
  /** Remove temp files of crashed writers. Default false. */
  readonly clean?: boolean;
  readonly log?: Logger;
}

/** The store check plus the current generation's targets that the store lacks. */
export interface SystemFsckResult extends FsckResult {
  readonly store: string;
  /** Current-generation targets whose image manifest is not in the store (`name@digest`). */
  readonly missingTargets: readonly string[];
  /** False when no system is installed (only the store was checked). */
  readonly installed: boolean;
}

/**
 * Re-hashes every blob of `<root>/atomfs-store/mos`, walks its graph, and checks that every target of
 * the current generation is present. `ok` is false on anything missing or corrupt. Read-only unless `clean`.
 */
export async function systemFsck(opts: SystemFsckOptions): Promise<SystemFsckResult> {
  const log = opts.log ?? silentLogger;
  const dir = storeDir(opts.root);
  const store = await openLayout(dir, { log });
  const result = await fsck(store, { log, ...(opts.clean !== undefined ? { clean: opts.clean } : {}) });
  let installed = true;
  const missingTargets: string[] = [];
  try {
    const sys = await loadSystem(await readGeneration({ root: opts.root }));
    for (const t of sys.targets) {
      const d = t.target.digest;
      // Presence only: the blob itself was re-hashed above.
      if (!isDigest(d) || !(await isFile(store.blobPath(d)))) missingTargets.push(`${t.sys.name}@${d}`);
    }
  } catch (e) {
    if (!(e instanceof MosError && e.code === 'CONFIG_NOT_INSTALLED')) throw e;
    installed = false;
  }
  const problems = [...result.problems, ...missingTargets.map((m) => `target ${m}: image manifest missing from the store`)];
  return { ...result, ok: result.ok && missingTargets.length === 0, problems, store: dir, missingTargets, installed };
}

function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}
