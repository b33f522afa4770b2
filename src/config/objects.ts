import * as nodeFs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { checkout, listFiles, writeBlob, writeCommit, writeTree, type TreeEntry } from 'isomorphic-git';
import { MosError, type Logger } from '../base/index.js';
import { fsyncDir } from '../host/index.js';
import { durableFs } from './durable-fs.js';
import { AUTHOR, BRANCH_REF, scratchDir } from './paths.js';

/** Generation files are flat names in the repository root, like mos's `<sha>.json`. */
const FILE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;

/** Throws CONFIG_INVALID unless every name is a plain file name (no paths, no `.git`). */
export function checkFileNames(files: ReadonlyMap<string, Uint8Array>): void {
  if (files.size === 0) throw new MosError({ code: 'CONFIG_INVALID', message: 'a generation needs at least one file' });
  for (const name of files.keys()) {
    if (!FILE_NAME_RE.test(name) || name.includes('..') || name.toLowerCase() === '.git') {
      throw new MosError({ code: 'CONFIG_INVALID', subject: name, message: 'is not a plain file name for the config repository' });
    }
  }
}

/** Prepares the scratch dir our atomic writes use, removing temp files a crashed writer left. Needs the lock. */
export async function resetScratch(configDir: string): Promise<string> {
  const dir = scratchDir(configDir);
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Writes blobs, tree and commit durably (every object fsync'd before this returns) and returns the
 * commit oid. Nothing references the commit yet: a crash now leaves only unreachable objects.
 */
export async function writeGenerationObjects(opts: {
  readonly repoDir: string;
  readonly tmpDir: string;
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly message: string;
  readonly now: Date;
  readonly parent?: string;
}): Promise<string> {
  const fs = durableFs(opts.tmpDir);
  const dir = opts.repoDir;
  const tree: TreeEntry[] = [];
  for (const name of [...opts.files.keys()].sort()) {
    const oid = await writeBlob({ fs, dir, blob: opts.files.get(name)! });
    tree.push({ mode: '100644', path: name, oid, type: 'blob' });
  }
  const treeOid = await writeTree({ fs, dir, tree });
  const timestamp = Math.floor(opts.now.getTime() / 1000);
  const who = { ...AUTHOR, timestamp, timezoneOffset: 0 };
  const message = opts.message.endsWith('\n') ? opts.message : `${opts.message}\n`;
  return writeCommit({
    fs,
    dir,
    commit: { message, tree: treeOid, parent: opts.parent === undefined ? [] : [opts.parent], author: who, committer: who },
  });
}

/**
 * Points `refs/heads/master` at `oid`: temp file, fsync, rename, directory fsync. This rename is the
 * switch point between generations (isomorphic-git would rewrite the ref file in place).
 */
export async function setMaster(repoDir: string, tmpDir: string, oid: string): Promise<void> {
  const refPath = join(repoDir, '.git', BRANCH_REF);
  await fsp.mkdir(join(repoDir, '.git', 'refs', 'heads'), { recursive: true });
  const tmp = join(tmpDir, `master.${process.pid}`);
  const fh = await fsp.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`${oid}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, refPath);
  await fsyncDir(join(repoDir, '.git', 'refs', 'heads'));
}

/**
 * Brings worktree and index in line with master (what mos leaves there). Best effort: readers use
 * commits only, so a crash or failure here never changes which generation is current. Touches only the
 * new generation's `names` and the files the index tracked, so the cost does not grow with history. A
 * failure is logged as a warning naming the repository, and the next commit rewrites the worktree.
 */
export async function syncWorktree(repoDir: string, tmpDir: string, names: Iterable<string>, log: Logger): Promise<void> {
  try {
    // Without filepaths isomorphic-git's workdir walk descends into .git and lstats every loose object.
    const cache = {};
    const tracked = await listFiles({ fs: nodeFs, dir: repoDir, cache }).catch(() => []);
    const filepaths = [...new Set([...names, ...tracked])];
    // Atomic renames so a killed writer never leaves a torn index, but no fsyncs: the worktree is a
    // convenience copy, never the source of truth.
    await checkout({ fs: durableFs(tmpDir, { sync: false }), dir: repoDir, ref: 'master', force: true, filepaths, cache });
  } catch (e) {
    // Not thrown: the generation is already committed and current, and failing the command now would
    // report a change that happened as if it had not. Only `git status` in the repository looks stale.
    log.warn('the config worktree was not refreshed (the new generation is committed)', {
      repo: repoDir,
      error: e instanceof Error ? e.message : String(e),
    });
  }
}
