import { stat } from 'node:fs/promises';
import { MosError, isDigest, silentLogger, type Logger } from '../base/index.js';
import { listHistory, readGeneration } from '../config/index.js';
import { fsck, openLayout, type FsckResult } from '../oci/index.js';
import { systemPaths } from './paths.js';
import { loadSystem } from './load-system.js';
import { installVerifier, loadAnchors } from './trust-policy.js';

/** Options of `systemFsck` (`mosctl fsck`). */
export interface SystemFsckOptions {
  readonly root: string;
  /** Remove temp files of crashed writers. Default false. */
  readonly clean?: boolean;
  /** Manifest CA for the signature check; default `<root>/factory/secure/manifestCA.pem`. */
  readonly capath?: string;
  /** Check the store only (no signature check of the config). */
  readonly skipSignatures?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
}

/** The store check plus the current generation's targets that the store lacks. */
export interface SystemFsckResult extends FsckResult {
  readonly store: string;
  /** Current-generation targets whose image manifest is not in the store (`name@digest`). */
  readonly missingTargets: readonly string[];
  /** False when no system is installed (only the store was checked). */
  readonly installed: boolean;
  /** Generations whose signed install manifests all verified against the manifest CA. */
  readonly signaturesVerified: number;
  /** One line per generation that failed the signature check (or why none could be checked). */
  readonly signatureProblems: readonly string[];
}

/**
 * Re-hashes every blob of `<root>/atomfs-store/mos`, walks its graph, and checks that every target of
 * the current generation is present. `ok` is false on anything missing or corrupt. Read-only unless `clean`.
 */
export async function systemFsck(opts: SystemFsckOptions): Promise<SystemFsckResult> {
  const log = opts.log ?? silentLogger;
  const dir = systemPaths(opts.root).store;
  const store = await openLayout(dir, { log });
  const result = await fsck(store, { log, ...(opts.clean !== undefined ? { clean: opts.clean } : {}) });
  let installed = true;
  let unreadable: string | undefined;
  const missingTargets: string[] = [];
  try {
    const sys = await loadSystem(await readGeneration({ root: opts.root }));
    for (const t of sys.targets) {
      const d = t.target.digest;
      // Presence only: the blob itself was re-hashed above.
      if (!isDigest(d) || !(await isFile(store.blobPath(d)))) missingTargets.push(`${t.sys.name}@${d}`);
    }
  } catch (e) {
    if (!(e instanceof MosError)) throw e;
    if (e.code === 'CONFIG_NOT_INSTALLED') installed = false;
    else unreadable = `current generation: ${e.subject ? e.subject + ': ' : ''}${e.message}`;
  }
  const sig = installed && !opts.skipSignatures ? await checkSignatures(opts) : { verified: 0, problems: [] };
  // Without the signature check, an unreadable current generation still has to be said.
  const config = sig.problems.length > 0 || unreadable === undefined || !opts.skipSignatures ? sig.problems : [unreadable];
  const problems = [...result.problems, ...missingTargets.map((m) => `target ${m}: image manifest missing from the store`), ...config];
  return {
    ...result,
    ok: result.ok && missingTargets.length === 0 && config.length === 0,
    problems,
    store: dir,
    missingTargets,
    installed,
    signaturesVerified: sig.verified,
    signatureProblems: sig.problems,
  };
}

// Every generation in history, not only the current one: rollback may make any of them current again.
async function checkSignatures(opts: SystemFsckOptions): Promise<{ verified: number; problems: string[] }> {
  let anchors;
  try {
    anchors = await loadAnchors(opts.root, opts.capath);
  } catch (e) {
    if (!(e instanceof MosError)) throw e;
    return { verified: 0, problems: [`signatures not checked: ${e.subject ? e.subject + ': ' : ''}${e.message}`] };
  }
  const verify = installVerifier(anchors, opts.now ?? new Date());
  const problems: string[] = [];
  let verified = 0;
  for (const info of await listHistory({ root: opts.root })) {
    try {
      await loadSystem(await readGeneration({ root: opts.root, ref: info.number }), { verify });
      verified++;
    } catch (e) {
      if (!(e instanceof MosError)) throw e;
      problems.push(`generation ${info.number}: ${e.subject ? e.subject + ': ' : ''}${e.message}`);
    }
  }
  return { verified, problems };
}

function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}
