import { MosError } from '../base/index.js';
import type { UidMap } from './types.js';

/** Defaults of mos (pkg/mosconfig/uidmap.go): on a host-root uid map 100000/65536, else 40000/2000. */
export const IDMAP_DEFAULTS = {
  hostRoot: { start: 100_000, range: 65_536 },
  nested: { start: 40_000, range: 2_000 },
} as const;

/** Options of `allocateIdmaps`; defaults are the host-root values. */
export interface AllocateIdmapsOptions {
  /** First host id handed out; default 100000. */
  readonly start?: number;
  /** Ids per group; default 65536. */
  readonly range?: number;
}

/** True when an nsgroup means "the host uid namespace" (no map). */
export function isHostNsgroup(group: string | undefined): boolean {
  return group === undefined || group === '' || group === 'none';
}

/**
 * Gives every nsgroup of `groups` (except ""/"none") its own host id range, disjoint from all others
 * (pure). A group found in `previous` keeps its hostid, so ownership stays valid across updates, unless
 * that range overlaps one kept earlier (Go mos gave every group the same range: the first keeps it, the
 * others move). New groups take the lowest free slot `start + k*range` that overlaps no range in
 * `previous` at all, so a removed group's files are never handed to a new group in the same update.
 */
export function allocateIdmaps(groups: readonly string[], previous: readonly UidMap[], opts: AllocateIdmapsOptions = {}): UidMap[] {
  const start = opts.start ?? IDMAP_DEFAULTS.hostRoot.start;
  const range = opts.range ?? IDMAP_DEFAULTS.hostRoot.range;
  if (!Number.isInteger(start) || !Number.isInteger(range) || start < 1 || range < 1) {
    throw new MosError({ code: 'INPUT_INVALID', subject: 'idmap', message: `start ${start} and range ${range} must be positive integers` });
  }
  const wanted = [...new Set(groups.filter((g) => !isHostNsgroup(g)))];
  const overlaps = (a: number, b: number) => a < b + range && b < a + range;
  const taken: number[] = [];
  const result = new Map<string, number>();
  // First pass: keep previous hostids, in `previous` order so the oldest holder wins a conflict.
  for (const p of previous) {
    const name = p['idmap-name'];
    if (!wanted.includes(name) || result.has(name)) continue;
    const h = p.hostid;
    if (!Number.isInteger(h) || h < range || h + range > 2 ** 32 - 1) continue; // below range: would collide with unshifted ids
    if (taken.some((t) => overlaps(t, h))) continue;
    result.set(name, h);
    taken.push(h);
  }
  const avoid = [...taken, ...previous.map((p) => p.hostid).filter((h) => Number.isInteger(h))];
  for (const name of wanted) {
    if (result.has(name)) continue;
    let h = Math.max(start, range);
    while (avoid.some((t) => overlaps(t, h))) h += range;
    if (h + range > 2 ** 32 - 1) throw new MosError({ code: 'INPUT_INVALID', subject: `nsgroup ${name}`, message: 'no free host id range left' });
    result.set(name, h);
    avoid.push(h);
  }
  return wanted.map((name) => ({ 'idmap-name': name, hostid: result.get(name)! }));
}

/** The hostid of `nsgroup` in `maps`, or undefined for the host namespace; INPUT_INVALID when it has no map. */
export function idmapFor(nsgroup: string | undefined, maps: readonly UidMap[], subject: string): number | undefined {
  if (isHostNsgroup(nsgroup)) return undefined;
  const m = maps.find((x) => x['idmap-name'] === nsgroup);
  if (!m) throw new MosError({ code: 'INPUT_INVALID', subject, message: `nsgroup ${JSON.stringify(nsgroup)} has no uid map`, hint: 'allocate maps with allocateIdmaps for every nsgroup' });
  return m.hostid;
}
