import { chmod, lchown, lstat, opendir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, describeSystemError } from '../base/index.js';
import { fileError, writeFileAtomic } from '../host/index.js';

/** Options of `shiftOwnership`. */
export interface ShiftOptions {
  /** Root of the tree to shift (the container's writable root, or a volume). */
  readonly dir: string;
  /** Container id 0 becomes `hostid` on the host. Must be >= range (shifted and unshifted ids must not overlap). */
  readonly hostid: number;
  readonly range: number;
  /** JSON record of the last shift of this tree: lets a re-activation skip the walk, or move a tree whose group got a new range. */
  readonly recordFile: string;
}

/** What a shift did. */
export interface ShiftResult {
  /** True when the record showed this tree already shifted to this range and nothing was walked. */
  readonly skipped: boolean;
  /** Entries whose owner changed. */
  readonly changed: number;
  /** The range the tree was moved from (0 = unshifted image ids). */
  readonly from: number;
}

interface ShiftRecord {
  readonly hostid: number;
  readonly range: number;
  readonly dev: number;
  readonly ino: number;
}

/**
 * Chowns a tree so that container ids [0, range) become host ids [hostid, hostid+range) (lchown, never
 * following symlinks; set-id bits the kernel clears on chown are restored; other mounts are not entered;
 * ACLs are not rewritten). Idempotent and crash-safe: ids already in the target range are left alone, so a
 * walk cut short and re-run never double-shifts; the record is written only after a full walk.
 */
export async function shiftOwnership(opts: ShiftOptions): Promise<ShiftResult> {
  const { dir, hostid, range, recordFile } = opts;
  if (!Number.isInteger(hostid) || !Number.isInteger(range) || range < 1 || hostid < range) {
    throw new MosError({ code: 'INPUT_INVALID', subject: dir, message: `cannot shift to hostid ${hostid} range ${range}: hostid must be >= range` });
  }
  const root = await lstat(dir).catch((e: unknown) => {
    throw fileError(e, dir, 'cannot shift ownership');
  });
  if (!root.isDirectory()) throw new MosError({ code: 'INPUT_INVALID', subject: dir, message: 'is not a directory' });
  const rec = await readRecord(recordFile);
  const sameTree = rec !== undefined && rec.dev === root.dev && rec.ino === root.ino && rec.range === range;
  if (sameTree && rec.hostid === hostid) return { skipped: true, changed: 0, from: hostid };
  const from = sameTree ? rec.hostid : 0;
  const map = (id: number): number => {
    if (id >= hostid && id < hostid + range) return id;
    if (from !== 0 && id >= from && id < from + range) return id - from + hostid;
    if (id < range) return id + hostid;
    return id; // outside every range: stays unmapped ("nobody" in the container)
  };
  let changed = 0;
  const stack = [dir];
  try {
    await shiftOne(dir, root, map).then((c) => (changed += c));
    while (stack.length > 0) {
      const d = stack.pop()!;
      for await (const ent of await opendir(d)) {
        const p = join(d, ent.name);
        const st = await lstat(p);
        changed += await shiftOne(p, st, map);
        // Do not walk into other mounts (a running container's /proc, a bind-mounted volume).
        if (st.isDirectory() && st.dev === root.dev) stack.push(p);
      }
    }
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot shift ownership: ${describeSystemError(e)}`, cause: e });
  }
  const record: ShiftRecord = { hostid, range, dev: root.dev, ino: root.ino };
  await writeFileAtomic(recordFile, JSON.stringify(record) + '\n');
  return { skipped: false, changed, from };
}

async function shiftOne(p: string, st: Awaited<ReturnType<typeof lstat>>, map: (id: number) => number): Promise<number> {
  const uid = map(Number(st.uid));
  const gid = map(Number(st.gid));
  if (uid === Number(st.uid) && gid === Number(st.gid)) return 0;
  await lchown(p, uid, gid);
  // chown clears setuid/setgid on non-directories; put them back (the image meant them).
  if (!st.isSymbolicLink() && !st.isDirectory() && (Number(st.mode) & 0o6000) !== 0) await chmod(p, Number(st.mode) & 0o7777);
  return 1;
}

async function readRecord(path: string): Promise<ShiftRecord | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<ShiftRecord>;
    if ([v.hostid, v.range, v.dev, v.ino].every((n) => typeof n === 'number')) return v as ShiftRecord;
  } catch {
    // absent or unreadable: treat the tree as unshifted; the walk is idempotent either way
  }
  return undefined;
}
