import { MosError, silentLogger, type Logger } from '../base/index.js';
import { repoError } from './errors.js';
import { checkFileNames, resetScratch, setMaster, syncWorktree, writeGenerationObjects } from './objects.js';
import { configPaths } from './paths.js';
import { currentTip, generationNumber } from './chain.js';
import { writeGenerationRecord } from './generation-record.js';
import { installedRepo } from './read.js';

/** Options of commitGeneration. */
export interface CommitGenerationOptions {
  readonly root: string;
  /** The complete new tree: every file the generation has (files not listed are dropped). */
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly message: string;
  /** Commit time (default: now). */
  readonly now?: Date;
  /** The HEAD oid the caller based its change on: CONFIG_CONFLICT if master has moved since. */
  readonly parent?: string;
  /** Gets a warning when the worktree refresh after the commit fails (default: silent). */
  readonly log?: Logger;
}

/**
 * Commits a new generation on master. The caller holds lockConfig. Crash-safe: every object is written
 * and fsync'd first, then master is switched by an atomic rename, then the worktree is refreshed (best
 * effort); a crash at any point leaves the old or the new commit current and the repository valid.
 */
export async function commitGeneration(opts: CommitGenerationOptions): Promise<{ oid: string; number: number }> {
  checkFileNames(opts.files);
  const repoDir = installedRepo(opts.root);
  const tip = await currentTip(repoDir);
  if (tip === undefined) throw new MosError({ code: 'CONFIG_CORRUPT', subject: repoDir, message: 'the config repository has no branch master' });
  if (opts.parent !== undefined && opts.parent !== tip) {
    throw new MosError({
      code: 'CONFIG_CONFLICT',
      subject: repoDir,
      message: `master moved from ${opts.parent.slice(0, 12)} to ${tip.slice(0, 12)} while this change was prepared`,
      hint: 'another writer committed meanwhile; run the command again',
    });
  }
  // The tip's number from the record (no walk unless another writer committed since ours).
  const number = (await generationNumber(repoDir, tip, {})) + 1;
  const tmpDir = await resetScratch(configPaths(opts.root).configDir);
  let oid: string;
  try {
    oid = await writeGenerationObjects({ repoDir, tmpDir, files: opts.files, message: opts.message, now: opts.now ?? new Date(), parent: tip });
    await setMaster(repoDir, tmpDir, oid);
  } catch (e) {
    throw repoError(e, repoDir, 'cannot commit the new generation');
  }
  await writeGenerationRecord(repoDir, tmpDir, { oid, number });
  await syncWorktree(repoDir, tmpDir, opts.files.keys(), opts.log ?? silentLogger);
  return { oid, number };
}
