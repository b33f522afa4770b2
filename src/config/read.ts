import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { readBlob, readTree } from 'isomorphic-git';
import { MosError } from '../base/index.js';
import { repoError } from './errors.js';
import { firstParentAt, headEntry, readCommitInfo, requireTip, type ChainEntry, type CommitInfo } from './chain.js';
import { BRANCH, MAX_CONFIG_FILE_BYTES, configPaths } from './paths.js';

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

/** All generations on master's first-parent chain, oldest first. Reads commits only; O(history). */
export async function listGenerations(repoDir: string, cache: object = {}): Promise<GenerationInfo[]> {
  const out: CommitInfo[] = [];
  for (let oid: string | undefined = await requireTip(repoDir); oid !== undefined; ) {
    const info = await readCommitInfo(repoDir, oid, cache);
    out.push(info);
    oid = info.parent;
  }
  return out.reverse().map((g, i) => publicInfo({ number: i + 1, ...g }));
}

/**
 * The current generation (master's tip) without its files: one commit read plus the writers' record,
 * whatever the length of history. CONFIG_NOT_INSTALLED, CONFIG_CORRUPT as readGeneration.
 */
export async function currentGeneration(opts: { readonly root: string }): Promise<GenerationInfo> {
  return publicInfo(await headEntry(installedRepo(opts.root), {}));
}

/**
 * Reads one generation (default: the current one) from its commit, never the worktree.
 * CONFIG_NOT_INSTALLED without a repository, CONFIG_CORRUPT for a broken one,
 * CONFIG_GENERATION_UNKNOWN for a ref that names no generation of master.
 */
export async function readGeneration(opts: ReadGenerationOptions): Promise<Generation> {
  const repoDir = installedRepo(opts.root);
  const cache = {};
  const info = await findGeneration(repoDir, opts.ref ?? 'HEAD', cache);
  const files = new Map<string, Uint8Array>();
  try {
    const { tree } = await readTree({ fs: nodeFs, dir: repoDir, oid: info.tree, cache });
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

/**
 * Resolves a ref from HEAD down the first-parent chain: HEAD costs no walk, generation N walks
 * (current - N) commits, a full oid walks until it is met, only an abbreviated oid walks the whole
 * chain (to refuse an ambiguous one).
 */
async function findGeneration(repoDir: string, ref: string | number, cache: object): Promise<ChainEntry> {
  const head = await headEntry(repoDir, cache);
  const unknown = (what: string) =>
    new MosError({ code: 'CONFIG_GENERATION_UNKNOWN', subject: repoDir, message: `${what} (generations 1-${head.number})`, hint: 'list them with mosctl history' });
  if (ref === 'HEAD') return head;
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref < 1 || ref > head.number) throw unknown(`there is no generation ${ref}`);
    return firstParentAt(repoDir, head, head.number - ref, cache);
  }
  if (!/^[0-9a-f]{4,40}$/.test(ref)) throw unknown(`${JSON.stringify(ref.slice(0, 64))} is neither HEAD, a generation number nor a commit id`);
  const hits: ChainEntry[] = [];
  for (let at: ChainEntry | undefined = head; at !== undefined; ) {
    if (at.oid.startsWith(ref)) {
      hits.push(at);
      if (ref.length === 40) break;
    }
    at = at.parent === undefined ? undefined : await firstParentAt(repoDir, at, 1, cache);
  }
  if (hits.length > 1) throw unknown(`commit prefix ${ref} is ambiguous`);
  if (hits.length === 0) throw unknown(`commit ${ref} is not a generation of ${BRANCH}`);
  return hits[0]!;
}

/** The generations of the installed system, oldest first (first-parent chain of master). */
export async function listHistory(opts: { readonly root: string }): Promise<GenerationInfo[]> {
  return listGenerations(installedRepo(opts.root));
}

function publicInfo(e: ChainEntry): GenerationInfo {
  return { number: e.number, oid: e.oid, time: e.time, message: e.message, ...(e.parent !== undefined ? { parent: e.parent } : {}) };
}
