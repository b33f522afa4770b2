import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { readBlob, readCommit, readTree, resolveRef, Errors } from 'isomorphic-git';
import { MosError } from '../base/index.js';
import { repoError } from './errors.js';
import { BRANCH, BRANCH_REF, MAX_CONFIG_FILE_BYTES, configPaths } from './paths.js';

/** One generation of the system: a commit on master's first-parent chain, oldest = 1. */
export interface GenerationInfo {
  readonly number: number;
  readonly oid: string;
  readonly time: Date;
  readonly message: string;
  /** The previous generation's oid (absent for generation 1). */
  readonly parent?: string;
}

/** A generation with the files of its commit. */
export interface Generation {
  readonly oid: string;
  readonly number: number;
  readonly time: Date;
  readonly message: string;
  /** File name → exact committed bytes (never the worktree). */
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** Options of readGeneration. */
export interface ReadGenerationOptions {
  readonly root: string;
  /** 'HEAD' (default), a generation number, or a commit oid (or a unique prefix of ≥ 4 hex digits). */
  readonly ref?: string | number;
}

/** The repository dir after checking it exists: CONFIG_NOT_INSTALLED otherwise. */
export function installedRepo(root: string): string {
  const { repoDir } = configPaths(root);
  if (!nodeFs.existsSync(join(repoDir, '.git'))) {
    throw new MosError({
      code: 'CONFIG_NOT_INSTALLED',
      subject: repoDir,
      message: 'no system is installed here (no config repository)',
      hint: 'install one with mosctl install, or pass --root',
    });
  }
  return repoDir;
}

// Commits are immutable and named by their hash, so what we read of one stays true: walking the chain
// again (every read and commit needs the generation number) costs no object reads for known commits.
const COMMITS = new Map<string, Omit<GenerationInfo, 'number'>>();
const MAX_CACHED_COMMITS = 100_000;

/** The current tip of master, or undefined if master does not exist. */
export async function currentTip(repoDir: string): Promise<string | undefined> {
  try {
    return await resolveRef({ fs: nodeFs, dir: repoDir, ref: BRANCH_REF });
  } catch (e) {
    if (e instanceof Errors.NotFoundError) return undefined;
    throw repoError(e, repoDir, `cannot read branch ${BRANCH}`);
  }
}

/** All generations on master's first-parent chain, oldest first. Reads commits only. */
export async function listGenerations(repoDir: string, cache: object = {}): Promise<GenerationInfo[]> {
  const tip = await currentTip(repoDir);
  if (tip === undefined) {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: repoDir, message: `the config repository has no branch ${BRANCH}`, hint: 'the config repository is damaged; inspect it with git fsck' });
  }
  const out: Omit<GenerationInfo, 'number'>[] = [];
  let oid: string | undefined = tip;
  try {
    while (oid !== undefined) {
      let info = COMMITS.get(oid);
      if (info === undefined) {
        const { commit } = await readCommit({ fs: nodeFs, dir: repoDir, oid, cache });
        const parent = commit.parent[0];
        info = { oid, time: new Date(commit.committer.timestamp * 1000), message: commit.message.replace(/\n+$/, ''), ...(parent !== undefined ? { parent } : {}) };
        if (COMMITS.size >= MAX_CACHED_COMMITS) COMMITS.clear();
        COMMITS.set(oid, info);
      }
      out.push(info);
      oid = info.parent;
    }
  } catch (e) {
    throw repoError(e, repoDir, `cannot read the history of ${BRANCH}`);
  }
  return out.reverse().map((g, i) => ({ number: i + 1, ...g }));
}

/**
 * Reads one generation (default: the current one) from its commit, never the worktree.
 * CONFIG_NOT_INSTALLED without a repository, CONFIG_CORRUPT for a broken one,
 * CONFIG_GENERATION_UNKNOWN for a ref that names no generation of master.
 */
export async function readGeneration(opts: ReadGenerationOptions): Promise<Generation> {
  const repoDir = installedRepo(opts.root);
  const cache = {};
  const gens = await listGenerations(repoDir, cache);
  const info = pick(gens, opts.ref ?? 'HEAD', repoDir);
  const files = new Map<string, Uint8Array>();
  try {
    const { tree } = await readTree({ fs: nodeFs, dir: repoDir, oid: info.oid, cache });
    for (const entry of tree) {
      if (entry.type !== 'blob') continue; // mos's layout is flat; anything else is not ours
      const { blob } = await readBlob({ fs: nodeFs, dir: repoDir, oid: entry.oid, cache });
      if (blob.byteLength > MAX_CONFIG_FILE_BYTES) {
        throw new MosError({ code: 'CONFIG_CORRUPT', subject: `${repoDir}: ${entry.path}`, message: `is ${blob.byteLength} bytes, more than the ${MAX_CONFIG_FILE_BYTES} allowed` });
      }
      files.set(entry.path, blob);
    }
  } catch (e) {
    throw repoError(e, repoDir, `cannot read generation ${info.number} (${info.oid.slice(0, 12)})`);
  }
  return { oid: info.oid, number: info.number, time: info.time, message: info.message, files };
}

function pick(gens: readonly GenerationInfo[], ref: string | number, repoDir: string): GenerationInfo {
  const unknown = (what: string) =>
    new MosError({ code: 'CONFIG_GENERATION_UNKNOWN', subject: repoDir, message: `${what} (generations 1-${gens.length})`, hint: 'list them with mosctl history' });
  if (ref === 'HEAD') return gens[gens.length - 1]!;
  if (typeof ref === 'number') {
    const g = Number.isInteger(ref) ? gens[ref - 1] : undefined;
    if (!g) throw unknown(`there is no generation ${ref}`);
    return g;
  }
  if (!/^[0-9a-f]{4,40}$/.test(ref)) throw unknown(`${JSON.stringify(ref.slice(0, 64))} is neither HEAD, a generation number nor a commit id`);
  const hits = gens.filter((g) => g.oid.startsWith(ref));
  if (hits.length > 1) throw unknown(`commit prefix ${ref} is ambiguous`);
  if (hits.length === 0) throw unknown(`commit ${ref} is not a generation of ${BRANCH}`);
  return hits[0]!;
}

/** The generations of the installed system, oldest first (first-parent chain of master). */
export async function listHistory(opts: { readonly root: string }): Promise<GenerationInfo[]> {
  return listGenerations(installedRepo(opts.root));
}
