import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/**
 * `<git dir>/mosctl-generation`: `<commit oid> <generation number>\n`, the number of the tip our last
 * writer committed. A commit's generation number is the length of its own first-parent chain, fixed by
 * its hash, so the record stays true for that oid forever; when master has moved on (Go mos or git
 * committed) readers walk back only until they meet it. Git ignores unknown files in its dir.
 */
export const GENERATION_RECORD = 'mosctl-generation';

/** A commit and its generation number, as a writer recorded them. */
export interface GenerationRecord {
  readonly oid: string;
  readonly number: number;
}

const RECORD_RE = /^([0-9a-f]{40}) ([1-9][0-9]{0,9})\n$/;

/** The record, or undefined if it is absent, unreadable or malformed: it only ever saves a walk. Never writes. */
export async function readGenerationRecord(repoDir: string): Promise<GenerationRecord | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(join(repoDir, '.git', GENERATION_RECORD), 'utf8');
  } catch {
    return undefined;
  }
  const m = RECORD_RE.exec(text);
  return m ? { oid: m[1]!, number: Number(m[2]) } : undefined;
}

/**
 * Replaces the record atomically (temp file in `tmpDir` on the same filesystem, rename). Writers call it
 * under the config lock after master is switched, so a crash leaves the previous tip's record: one step
 * of walking, never a wrong number. Best effort and not fsync'd: a record that is missing, stale or
 * emptied by a power cut costs the next reader a walk, never correctness.
 */
export async function writeGenerationRecord(repoDir: string, tmpDir: string, record: GenerationRecord): Promise<void> {
  const tmp = join(tmpDir, `${GENERATION_RECORD}.${process.pid}`);
  try {
    await fsp.writeFile(tmp, `${record.oid} ${record.number}\n`, { mode: 0o644 });
    await fsp.rename(tmp, join(repoDir, '.git', GENERATION_RECORD));
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => {});
  }
}
