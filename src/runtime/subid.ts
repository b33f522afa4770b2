import { readFile } from 'node:fs/promises';
import { MosError, describeSystemError } from '../base/index.js';
import { acquireLock, writeFileAtomic } from '../host/index.js';

/** Where the subordinate id files live; defaults are the host's. */
export interface SubIdOptions {
  /** Default `root`. */
  readonly user?: string;
  /** Default `/etc/subuid`. */
  readonly subuidFile?: string;
  /** Default `/etc/subgid`. */
  readonly subgidFile?: string;
  /** Serialises concurrent editors; default `/run/mosctl-subid.lock`. */
  readonly lockFile?: string;
}

type Range = { readonly hostid: number; readonly range: number };

/** Lines of a subuid/subgid text that cover [hostid, hostid+range) for `user` (pure). */
export function subIdCovered(text: string, user: string, r: Range): boolean {
  return text.split('\n').some((line) => {
    const [u, s, c] = line.trim().split(':');
    const start = Number(s);
    const count = Number(c);
    return u === user && Number.isInteger(start) && Number.isInteger(count) && start <= r.hostid && r.hostid + r.range <= start + count;
  });
}

/**
 * Makes sure `user` (root) owns each range in /etc/subuid and /etc/subgid, appending `root:<hostid>:<range>`
 * where missing (idempotent, atomic, under a lock). Needed because LXC, when newuidmap is installed (the
 * `uidmap` package), maps ids through it even as root, and newuidmap refuses ranges not listed there.
 * Returns the lines added, per file.
 */
export async function ensureSubordinateIds(ranges: readonly Range[], opts: SubIdOptions = {}): Promise<string[]> {
  return editSubIds(opts, (text, user, file) => {
    const added: string[] = [];
    for (const r of ranges) {
      if (subIdCovered([text, ...added].join('\n'), user, r)) continue;
      added.push(`${user}:${r.hostid}:${r.range}`);
    }
    return { text: added.length === 0 ? text : text + (text === '' || text.endsWith('\n') ? '' : '\n') + added.map((l) => l + '\n').join(''), changes: added.map((l) => `${file}: ${l}`) };
  });
}

/** Removes exactly the lines `user:<hostid>:<range>` of `ranges` (idempotent); for tests and uninstall. */
export async function removeSubordinateIds(ranges: readonly Range[], opts: SubIdOptions = {}): Promise<string[]> {
  return editSubIds(opts, (text, user, file) => {
    const drop = new Set(ranges.map((r) => `${user}:${r.hostid}:${r.range}`));
    const lines = text.split('\n');
    const kept = lines.filter((l) => !drop.has(l.trim()));
    return { text: kept.join('\n'), changes: lines.filter((l) => drop.has(l.trim())).map((l) => `${file}: ${l}`) };
  });
}

async function editSubIds(opts: SubIdOptions, edit: (text: string, user: string, file: string) => { text: string; changes: string[] }): Promise<string[]> {
  const user = opts.user ?? 'root';
  const files = [opts.subuidFile ?? '/etc/subuid', opts.subgidFile ?? '/etc/subgid'];
  const lock = await acquireLock(opts.lockFile ?? '/run/mosctl-subid.lock', { wait: true, timeoutMs: 30_000 });
  try {
    const changes: string[] = [];
    for (const file of files) {
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new MosError({ code: 'HOST_IO', subject: file, message: `cannot read: ${describeSystemError(e)}`, cause: e });
      }
      const r = edit(text, user, file);
      if (r.changes.length > 0) await writeFileAtomic(file, r.text);
      changes.push(...r.changes);
    }
    return changes;
  } finally {
    await lock.release();
  }
}
