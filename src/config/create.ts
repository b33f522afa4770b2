import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { init } from 'isomorphic-git';
import { MosError, describeSystemError, silentLogger, type Logger } from '../base/index.js';
import { ensureDir, fsyncDir, lstatOrAbsent } from '../host/index.js';
import { durableFs } from './durable-fs.js';
import { repoError } from './errors.js';
import { writeGenerationRecord } from './generation-record.js';
import { checkFileNames, resetScratch, setMaster, syncWorktree, writeGenerationObjects } from './objects.js';
import { BRANCH, GIT_CONFIG, configPaths } from './paths.js';

const STAGING_PREFIX = '.manifest.git.new-';

/** Options of createConfigRepo. */
export interface CreateConfigRepoOptions {
  readonly root: string;
  /** The files of generation 1 (`manifest.json` and the install-manifest triples). */
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly message: string;
  /** Commit time (default: now). */
  readonly now?: Date;
  /** Gets a warning when the worktree checkout fails (default: silent). */
  readonly log?: Logger;
}

/**
 * Creates `config/manifest.git` with generation 1, in mos's layout (non-bare, branch master, author
 * `machine <root@machine.local>`, git CLI's config). Built aside under `config/` and renamed into place,
 * so a crash leaves no repository or a complete one. CONFIG_EXISTS if one exists. Caller holds the lock.
 */
export async function createConfigRepo(opts: CreateConfigRepoOptions): Promise<{ oid: string }> {
  checkFileNames(opts.files);
  const { configDir, repoDir } = configPaths(opts.root);
  await ensureDir(configDir, 0o755);
  if (await present(repoDir)) {
    throw new MosError({ code: 'CONFIG_EXISTS', subject: repoDir, message: 'a system is already installed here', hint: 'use mosctl update to change it' });
  }
  // A crashed create leaves its staging dir; nobody else uses these names and we hold the lock.
  for (const name of await fsp.readdir(configDir)) {
    if (name.startsWith(STAGING_PREFIX)) await fsp.rm(join(configDir, name), { recursive: true, force: true });
  }
  const tmpDir = await resetScratch(configDir);
  const staging = join(configDir, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await fsp.mkdir(staging, { mode: 0o755 });
    const fs = durableFs(tmpDir);
    await init({ fs, dir: staging, defaultBranch: BRANCH });
    await fs.promises.writeFile(join(staging, '.git', 'config'), GIT_CONFIG); // like the git CLI: filemode true, no ignorecase
    const oid = await writeGenerationObjects({ repoDir: staging, tmpDir, files: opts.files, message: opts.message, now: opts.now ?? new Date() });
    await setMaster(staging, tmpDir, oid);
    await writeGenerationRecord(staging, tmpDir, { oid, number: 1 });
    await syncWorktree(staging, tmpDir, opts.files.keys(), opts.log ?? silentLogger);
    await fsyncDir(staging);
    await fsp.rename(staging, repoDir);
    await fsyncDir(configDir);
    return { oid };
  } catch (e) {
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => {});
    if (e instanceof MosError) throw e;
    if (e && typeof e === 'object' && 'code' in e && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST')) {
      throw new MosError({ code: 'CONFIG_EXISTS', subject: repoDir, message: 'a system is already installed here', cause: e });
    }
    if (e && typeof e === 'object' && 'code' in e && typeof e.code === 'string' && e.code.startsWith('E')) {
      throw new MosError({ code: 'HOST_IO', subject: repoDir, message: `cannot create the config repository: ${describeSystemError(e)}`, cause: e });
    }
    throw repoError(e, repoDir, 'cannot create the config repository');
  }
}

// lstat: a dangling symlink at the repository path is present too (rename would not replace it cleanly).
async function present(path: string): Promise<boolean> {
  return (await lstatOrAbsent(path)) !== undefined;
}
