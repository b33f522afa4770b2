import * as nodeFs from 'node:fs';
import { readCommit, resolveRef, Errors } from 'isomorphic-git';
import { MosError } from '../base/index.js';
import { repoError } from './errors.js';
import { readGenerationRecord } from './generation-record.js';
import { BRANCH, BRANCH_REF } from './paths.js';

/** What one commit says about its generation; `tree` lets readers skip re-reading the commit. */
export interface CommitInfo {
  readonly oid: string;
  readonly tree: string;
  readonly time: Date;
  readonly message: string;
  /** The first parent: the previous generation (absent for generation 1). */
  readonly parent?: string;
}

/** A commit of master's first-parent chain with its generation number. */
export interface ChainEntry extends CommitInfo {
  readonly number: number;
}

// Commits are immutable and named by their hash, so what we read of one stays true: walking the chain
// again (gc and fsck read every generation by number) costs no object reads for known commits. Keyed by
// repository too, so one repository's objects never stand in for another's missing ones.
const COMMITS = new Map<string, CommitInfo>();
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

/** The tip of master: CONFIG_CORRUPT if there is none. */
export async function requireTip(repoDir: string): Promise<string> {
  const tip = await currentTip(repoDir);
  if (tip === undefined) {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: repoDir, message: `the config repository has no branch ${BRANCH}`, hint: 'the config repository is damaged; inspect it with git fsck' });
  }
  return tip;
}

/** Reads one commit (once per process). `cache` is isomorphic-git's pack cache, shared by one operation. */
export async function readCommitInfo(repoDir: string, oid: string, cache: object): Promise<CommitInfo> {
  const key = `${repoDir}\0${oid}`;
  let info = COMMITS.get(key);
  if (info !== undefined) return info;
  try {
    const { commit } = await readCommit({ fs: nodeFs, dir: repoDir, oid, cache });
    const parent = commit.parent[0];
    info = { oid, tree: commit.tree, time: new Date(commit.committer.timestamp * 1000), message: commit.message.replace(/\n+$/, ''), ...(parent !== undefined ? { parent } : {}) };
  } catch (e) {
    throw repoError(e, repoDir, `cannot read commit ${oid.slice(0, 12)} of ${BRANCH}`);
  }
  if (COMMITS.size >= MAX_CACHED_COMMITS) COMMITS.clear();
  COMMITS.set(key, info);
  return info;
}

/**
 * The generation number of `tip` (the length of its first-parent chain). Walks back only until it meets
 * the commit the writers' record names (no step when the record names `tip`), else to the root: the
 * record saves reads, it never decides the answer for a commit it does not name.
 */
export async function generationNumber(repoDir: string, tip: string, cache: object): Promise<number> {
  const record = await readGenerationRecord(repoDir);
  let steps = 0;
  for (let oid: string | undefined = tip; oid !== undefined; steps++) {
    if (oid === record?.oid) return record.number + steps;
    oid = (await readCommitInfo(repoDir, oid, cache)).parent;
  }
  return steps;
}

/** Master's tip with its number: one commit read and the record, whatever the length of history. */
export async function headEntry(repoDir: string, cache: object): Promise<ChainEntry> {
  const tip = await requireTip(repoDir);
  const info = await readCommitInfo(repoDir, tip, cache);
  return { number: await generationNumber(repoDir, tip, cache), ...info };
}

/** The entry `steps` first parents below `from` (CONFIG_CORRUPT if the chain ends first). */
export async function firstParentAt(repoDir: string, from: ChainEntry, steps: number, cache: object): Promise<ChainEntry> {
  let at = from;
  for (let i = 0; i < steps; i++) {
    if (at.parent === undefined) {
      throw new MosError({ code: 'CONFIG_CORRUPT', subject: repoDir, message: `generation ${at.number} has no parent`, hint: 'the config repository is damaged; inspect it with git fsck' });
    }
    at = { number: at.number - 1, ...(await readCommitInfo(repoDir, at.parent, cache)) };
  }
  return at;
}
