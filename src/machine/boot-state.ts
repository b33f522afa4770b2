import { open, readFile } from 'node:fs/promises';
import { MosError } from '../base/index.js';
import { ensureDir, readFileLimited, statOrAbsent, writeFileAtomic } from '../host/index.js';
import { systemPaths } from './paths.js';

// Boot assessment (health-gated commit): the record of which generation is known good, which one is on
// trial and how many tries it has left, and which install manifests fell back. It lives in
// `config/boot-state.json` beside the config repository (never in it: git history stays mos's), is
// replaced atomically with fsync (temp file, rename, directory fsync), and every change appends one
// line to `config/boot-events.jsonl`. The initrd reads and decrements it before it mounts anything.

/** Tries a new generation gets when nothing says otherwise. */
export const DEFAULT_TRIES = 2;
/** Tries accepted from a flag or a config file. */
export const MAX_TRIES = 10;

/** Where a trial generation stands. `failed`: out of tries, the next boot falls back. */
export type TrialState = 'pending' | 'trying' | 'assessing' | 'failed';

/** What `status` shows for the current generation. */
export type AssessmentState = 'good' | TrialState | 'unassessed';

/** Why a try failed: the check, what it said, and where in which boot. */
export interface BootFailure {
  /** `unit multi-user.target`, `container web`, `health.d/50-web`, `vote`, `operator`, `no assessment` … */
  readonly check: string;
  readonly reason: string;
  readonly bootId: string;
  /** Seconds since that boot's kernel start (CLOCK_MONOTONIC, never the wall clock). */
  readonly uptime: number;
  readonly time: string;
}

/** One boot of a trial generation, recorded by the initrd after it decremented the tries. */
export interface TrialBoot {
  readonly try: number;
  readonly bootId: string;
  readonly uptime: number;
  readonly time: string;
}

export interface GenerationRef {
  readonly generation: number;
  readonly commit: string;
}

export interface Trial extends GenerationRef {
  readonly tries: number;
  /** Tries left before the next boot of this generation (the initrd takes one before it mounts). */
  readonly left: number;
  readonly state: TrialState;
  readonly boots: readonly TrialBoot[];
  readonly lastFailure?: BootFailure;
  /** A workload's vote through the upgrade API (`POST /v1/boot/vote`), when the assessment asks for one. */
  readonly vote?: { readonly good: boolean; readonly by: string; readonly reason?: string; readonly time: string };
}

/** An install manifest whose generation fell back: `update` refuses it without --retry-failed. */
export interface FailedManifest extends GenerationRef {
  readonly manifest: string;
  readonly check: string;
  readonly reason: string;
  readonly tries: number;
  readonly time: string;
}

export interface BootState {
  readonly version: 1;
  /** Tries a new generation gets (`update --tries` and `assess.yaml` set it per generation). */
  readonly tries: number;
  /** The generation a fallback returns to. */
  readonly good?: GenerationRef & { readonly since: string };
  /** The current generation, while it is not good. */
  readonly trial?: Trial;
  readonly failed: readonly FailedManifest[];
}

/** One line of `config/boot-events.jsonl`. */
export interface BootEvent {
  readonly time: string;
  readonly bootId: string;
  readonly uptime: number;
  /** `pending`, `trying`, `assessing`, `check-failed`, `good`, `failed`, `fallback`, `marked-good`, `marked-bad`, `vote`, `unassessed` … */
  readonly event: string;
  readonly generation: number;
  readonly commit: string;
  readonly detail?: string;
  readonly [k: string]: unknown;
}

const MAX_STATE_BYTES = 1024 * 1024;
const MAX_EVENTS_BYTES = 64 * 1024 * 1024;
const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNat = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 1e9;
const isStr = (v: unknown, max = 4096): v is string => typeof v === 'string' && v.length <= max;
const isRef = (v: unknown): boolean => isObj(v) && isNat(v['generation'], 1) && isStr(v['commit']) && HEX40.test(v['commit']);
const isFailure = (v: unknown): boolean => isObj(v) && isStr(v['check']) && isStr(v['reason']) && isStr(v['bootId']) && typeof v['uptime'] === 'number' && isStr(v['time']);

function valid(v: unknown): v is BootState {
  if (!isObj(v) || v['version'] !== 1 || !isNat(v['tries'], 1) || (v['tries'] as number) > MAX_TRIES || !Array.isArray(v['failed'])) return false;
  if (v['good'] !== undefined && !(isRef(v['good']) && isStr((v['good'] as Record<string, unknown>)['since']))) return false;
  const t = v['trial'];
  if (t !== undefined) {
    if (!isObj(t) || !isRef(t) || !isNat(t['tries'], 1) || !isNat(t['left']) || (t['left'] as number) > (t['tries'] as number)) return false;
    if (!['pending', 'trying', 'assessing', 'failed'].includes(t['state'] as string)) return false;
    if (!Array.isArray(t['boots']) || !t['boots'].every((b) => isObj(b) && isNat(b['try'], 1) && isStr(b['bootId']) && typeof b['uptime'] === 'number')) return false;
    if (t['lastFailure'] !== undefined && !isFailure(t['lastFailure'])) return false;
  }
  return v['failed'].every((f) => isObj(f) && isRef(f) && isStr(f['manifest']) && HEX64.test(f['manifest']) && isStr(f['check']) && isStr(f['reason']));
}

const HINT = 'the boot-assessment record is written only by mosctl; restore it from a backup, or remove it (the current generation is then booted unassessed)';

/** The record, or undefined when there is none (a system installed before boot assessment, or by Go mos). */
export async function readBootState(root: string): Promise<BootState | undefined> {
  const file = systemPaths(root).bootState;
  if (!(await statOrAbsent(file))) return undefined;
  let v: unknown;
  try {
    v = JSON.parse((await readFileLimited(file, MAX_STATE_BYTES)).toString('utf8'));
  } catch (e) {
    if (e instanceof MosError && e.code !== 'NOT_FOUND') throw e;
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'is not JSON', hint: HINT, cause: e });
  }
  if (!valid(v)) throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'is not a boot-assessment record (version 1)', hint: HINT });
  return v;
}

/** Replaces the record durably: when this returns, a power cut cannot take the change back. */
export async function writeBootState(root: string, state: BootState): Promise<void> {
  const p = systemPaths(root);
  await ensureDir(p.configDir);
  await writeFileAtomic(p.bootState, JSON.stringify(state, null, 1) + '\n', { mode: 0o644 });
}

/** This boot's id and seconds since the kernel started (both from /proc; stable across the initrd and the host). */
export async function bootClock(): Promise<{ bootId: string; uptime: number }> {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
  const up = Number((await readFile('/proc/uptime', 'utf8').catch(() => '0')).split(' ')[0]);
  return { bootId, uptime: Number.isFinite(up) ? up : 0 };
}

/** Appends one event and fsyncs it (the record of why a fallback happened must survive the reset that follows). */
export async function appendBootEvent(
  root: string,
  e: { readonly event: string; readonly generation: number; readonly commit: string; readonly detail?: string; readonly now?: Date; readonly [k: string]: unknown },
): Promise<BootEvent> {
  const p = systemPaths(root);
  const { now, ...rest } = e;
  const event = { time: ((now as Date | undefined) ?? new Date()).toISOString(), ...(await bootClock()), ...rest } as BootEvent;
  await ensureDir(p.configDir);
  const fh = await open(p.bootEvents, 'a+', 0o644);
  try {
    // A power cut mid-append can leave a last line without its newline: start on a line of our own.
    const { size } = await fh.stat();
    const last = Buffer.alloc(1);
    const torn = size > 0 && (await fh.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a;
    await fh.write((torn ? '\n' : '') + JSON.stringify(event) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return event;
}

/** One line of the event log as JSON, or undefined for a line a power cut tore (or anything else). */
function parseBootEvent(line: string): BootEvent | undefined {
  try {
    const v = JSON.parse(line) as unknown;
    return isObj(v) && isStr(v['event']) && isNat(v['generation'], 1) ? (v as BootEvent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The events, oldest first. A line that is not a boot event (the torn end of an append a power cut
 * interrupted; the next append starts a new line) is skipped: the log explains, it decides nothing.
 */
export async function readBootEvents(root: string, opts: { last?: number } = {}): Promise<BootEvent[]> {
  const file = systemPaths(root).bootEvents;
  if (!(await statOrAbsent(file))) return [];
  const out: BootEvent[] = [];
  for (const line of (await readFileLimited(file, MAX_EVENTS_BYTES)).toString('utf8').split('\n')) {
    const e = line.length > 0 ? parseBootEvent(line) : undefined;
    if (e) out.push(e);
  }
  return opts.last !== undefined ? out.slice(-opts.last) : out;
}

/**
 * The complete lines of the event log from byte `offset` on (at most `maxBytes` of them): each event
 * with its line's index among those lines, how many lines were read and the bytes they took. An
 * unfinished last line is left for the next read. What the upgrade API's journal follows.
 */
export async function readBootEventsFrom(
  root: string,
  offset: number,
  maxBytes = 1024 * 1024,
): Promise<{ readonly events: readonly { readonly index: number; readonly event: BootEvent }[]; readonly lines: number; readonly bytes: number }> {
  let fh;
  try {
    fh = await open(systemPaths(root).bootEvents, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], lines: 0, bytes: 0 };
    throw e;
  }
  try {
    const buf = Buffer.alloc(maxBytes);
    const { bytesRead } = await fh.read(buf, 0, maxBytes, offset);
    const end = buf.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
    const lines = buf.subarray(0, end).toString('utf8').split('\n').slice(0, -1);
    const events: { index: number; event: BootEvent }[] = [];
    lines.forEach((l, index) => {
      const event = parseBootEvent(l);
      if (event) events.push({ index, event });
    });
    // A single line longer than maxBytes is not an event of ours: step over it rather than stall.
    if (end === 0 && bytesRead === maxBytes) return { events: [], lines: 1, bytes: bytesRead };
    return { events, lines: lines.length, bytes: end };
  } finally {
    await fh.close();
  }
}

/** The assessment state of generation `commit` under `state` (a record-less system is `unassessed`). */
export function assessmentOf(state: BootState | undefined, commit: string): AssessmentState {
  if (state === undefined) return 'unassessed';
  if (state.good?.commit === commit) return 'good';
  if (state.trial?.commit === commit) return state.trial.state;
  return 'pending'; // a tip the record does not know yet: the next boot counts it as a new trial
}

/** Checks a tries count from a flag or a file. */
export function checkTries(n: number, subject: string): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_TRIES) {
    throw new MosError({ code: 'USAGE', subject, message: `must be a whole number of tries from 1 to ${MAX_TRIES}, not ${n}` });
  }
  return n;
}

/** The record's trial of `at`, or a fresh pending one with `tries` (a tip the record does not know yet). */
export function trialOf(state: BootState, at: GenerationRef, tries: number = state.tries): Trial {
  return state.trial?.commit === at.commit ? state.trial : { generation: at.generation, commit: at.commit, tries, left: tries, state: 'pending', boots: [] };
}
