import { isMosError } from '../base/index.js';
import { listHistory, readGeneration } from '../config/index.js';
import { loadSystem, type InstallVerifier } from './load-system.js';
import { readPins } from './pins.js';
import { readBootEvents, readBootState, type AssessmentState, type BootEvent, type BootState } from './boot-state.js';

/** One generation in `mosctl history`. */
export interface HistoryEntry {
  readonly number: number;
  /** The generation's commit id in config/manifest.git (40 hex). */
  readonly commit: string;
  readonly time: string;
  readonly message: string;
  readonly product: string;
  /** Targets of the generation with their pinned digests, in system order. */
  readonly targets: readonly { readonly name: string; readonly version: string; readonly digest: string }[];
  /** Why this generation could not be read (an old broken generation does not hide the others). */
  readonly problem?: string;
  readonly current: boolean;
  /** Pinned (`mosctl pin`): gc --keep keeps its images. */
  readonly pinned: boolean;
  /** Its boot assessment, when it has one: good, on trial (pending, trying, assessing) or failed, and why. */
  readonly boot?: { readonly state: Exclude<AssessmentState, 'unassessed'>; readonly detail?: string; readonly check?: string; readonly triesUsed?: number; readonly tries?: number };
}

/** Options of history. */
export interface HistoryOptions {
  readonly root: string;
  readonly verify?: InstallVerifier;
}

/** Every generation of the installed system, oldest first, with product and target digests. */
export async function history(opts: HistoryOptions): Promise<HistoryEntry[]> {
  const gens = await listHistory({ root: opts.root });
  const pins = await readPins(opts.root);
  // A damaged record or log hides no generation: it only leaves BOOT empty.
  const boot = await readBootState(opts.root).catch(() => undefined);
  const events = await readBootEvents(opts.root).catch(() => [] as BootEvent[]);
  const out: HistoryEntry[] = [];
  for (const g of gens) {
    const b = bootOf(boot, g.number, g.oid) ?? pastOf(events, g.oid);
    const base = { number: g.number, commit: g.oid, time: g.time.toISOString(), message: g.message, current: g.number === gens.length, pinned: pins.has(g.oid) };
    const assessed = b ? { boot: b } : {}; // last: the API's serializer writes optional fields after the required ones
    try {
      const s = await loadSystem(await readGeneration({ root: opts.root, ref: g.oid }), opts.verify ? { verify: opts.verify } : {});
      const products = [...new Set([...s.manifests.values()].map((m) => m.value.product))];
      out.push({ ...base, product: products.join(', '), targets: s.targets.map(({ target: t }) => ({ name: t.service_name, version: t.version, digest: t.digest })), ...assessed });
    } catch (e) {
      if (!isMosError(e) || e.code === 'CONFIG_NOT_INSTALLED') throw e;
      out.push({ ...base, product: '', targets: [], problem: `${e.subject ? e.subject + ': ' : ''}${e.message}`, ...assessed });
    }
  }
  return out;
}

function bootOf(s: BootState | undefined, number: number, commit: string): HistoryEntry['boot'] {
  if (s === undefined) return undefined;
  if (s.good?.commit === commit) return { state: 'good' };
  const t = s.trial;
  if (t?.commit === commit) {
    const used = t.tries - t.left;
    const why = t.lastFailure ? `; last: ${t.lastFailure.check}: ${t.lastFailure.reason}` : '';
    return { state: t.state, detail: `${used} of ${t.tries} tries used${why}`, triesUsed: used, tries: t.tries };
  }
  const f = s.failed.find((x) => x.commit === commit || x.generation === number);
  return f ? { state: 'failed', detail: `${f.check}: ${f.reason}`, check: f.check } : undefined;
}

/** A generation the record no longer names (an older good one): what its last verdict in the log was. */
function pastOf(events: readonly BootEvent[], commit: string): HistoryEntry['boot'] {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.commit !== commit) continue;
    if (e.event === 'good' || e.event === 'marked-good') return { state: 'good' };
    if (e.event === 'failed' || e.event === 'marked-bad') return { state: 'failed', ...(e.detail ? { detail: e.detail, check: e.detail.split(':')[0]! } : {}) };
  }
  return undefined;
}
