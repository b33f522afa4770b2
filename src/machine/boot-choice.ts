import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { commitGeneration, readGeneration, currentGeneration } from '../config/index.js';
import { readFileLimited, writeFileAtomic } from '../host/index.js';
import { systemPaths } from './paths.js';
import {
  appendBootEvent, bootClock, trialOf, readBootState, writeBootState,
  type AssessmentState, type BootFailure, type BootState, type FailedManifest, type Trial,
} from './boot-state.js';

/** What the initrd decided to boot, and why (printed on the console, kept in `run/mosctl/booted.json`). */
export interface BootChoice {
  readonly generation: number;
  readonly commit: string;
  readonly state: AssessmentState;
  /** A trial boot: this is try `n` of `of`. */
  readonly try?: { readonly n: number; readonly of: number };
  /** The trial that ran out of tries, and the good generation this boot returned to (as a new commit). */
  readonly fallback?: { readonly from: number; readonly fromCommit: string; readonly to: number; readonly reason: string };
  readonly note?: string;
  readonly bootId: string;
}

const INSTALL_JSON = /^([0-9a-f]{64})\.json$/;

/**
 * The initrd's step before it assembles anything (the caller holds the config lock). A generation that
 * is not good is a trial: one try is taken from its record and fsync'd *before* anything is mounted, so a
 * hang, a panic or a power cut during this boot counts. A trial with no tries left is failed: its new
 * install manifests are recorded as failed, and the last good generation becomes current again as a new
 * commit (history only grows), which this boot then assembles. Every step is ordered so a power cut
 * between any two leaves a record the next boot completes the same way.
 */
export async function chooseBootGeneration(root: string, opts: { readonly now?: Date; readonly log?: Logger } = {}): Promise<BootChoice> {
  const log = opts.log ?? silentLogger;
  const now = opts.now ?? new Date();
  const clock = await bootClock();
  const head = await currentGeneration({ root });
  const at = { generation: head.number, commit: head.oid };
  let state: BootState | undefined;
  try {
    state = await readBootState(root);
  } catch (e) {
    // A damaged record must not keep the machine from booting: the tip boots unassessed, loudly.
    log.warn(`${e instanceof MosError ? `${e.subject}: ${e.message}` : String(e)}: booting generation ${head.number} unassessed`);
    return { ...at, state: 'unassessed', note: 'the boot-assessment record is damaged', bootId: clock.bootId };
  }
  if (state === undefined) return { ...at, state: 'unassessed', note: 'no boot-assessment record', bootId: clock.bootId };
  if (state.good?.commit === head.oid) return { ...at, state: 'good', bootId: clock.bootId };

  // Power cut after a fallback commit, before the record said so: the tip is the fallback itself.
  if (state.trial?.state === 'failed' && state.trial.commit !== head.oid && head.parent === state.trial.commit && state.good !== undefined) {
    const { trial: _t, ...rest } = state;
    await writeBootState(root, { ...rest, good: { ...at, since: now.toISOString() } });
    return { ...at, state: 'good', note: `fallback from generation ${state.trial.generation} completed`, bootId: clock.bootId };
  }

  let trial: Trial = trialOf(state, at);
  if (trial.left > 0 && trial.state !== 'failed') {
    const n = trial.tries - trial.left + 1;
    trial = { ...trial, left: trial.left - 1, state: 'trying', boots: [...trial.boots, { try: n, bootId: clock.bootId, uptime: clock.uptime, time: now.toISOString() }].slice(-20) };
    await writeBootState(root, { ...state, trial });
    await appendBootEvent(root, { ...at, event: 'trying', detail: `try ${n} of ${trial.tries}`, now });
    return { ...at, state: 'trying', try: { n, of: trial.tries }, bootId: clock.bootId };
  }
  return fallBack(root, state, trial, head.oid, { now, log, bootId: clock.bootId });
}

/** Out of tries: record the failure, then make the good generation current again and boot that. */
async function fallBack(root: string, state: BootState, trial: Trial, headOid: string, ctx: { now: Date; log: Logger; bootId: string; failure?: BootFailure }): Promise<BootChoice> {
  const failure = ctx.failure ?? trial.lastFailure;
  const n = trial.boots.length;
  const check = failure?.check ?? 'assessment';
  const why = failure?.reason ?? `not finished in ${n} boot${n === 1 ? '' : 's'} (it hung, crashed or lost power first)`;
  const reason = `${check}: ${why}`;
  const at = { generation: trial.generation, commit: trial.commit };
  if (state.good === undefined) {
    ctx.log.warn(`generation ${trial.generation} failed (${reason}), but no generation is known good: booting it anyway`);
    return { ...at, state: 'failed', note: `failed (${reason}); no good generation to fall back to`, bootId: ctx.bootId };
  }
  const good = state.good;
  const failedGen = await readGeneration({ root, ref: trial.commit });
  const goodGen = await readGeneration({ root, ref: good.commit });
  const goodSet = new Set(goodGen.files.keys());
  const time = ctx.now.toISOString();
  const known = new Set(state.failed.map((f) => f.manifest));
  const newlyFailed: FailedManifest[] = [...failedGen.files.keys()]
    .map((n) => INSTALL_JSON.exec(n)?.[1])
    .filter((sha): sha is string => sha !== undefined && !goodSet.has(`${sha}.json`) && !known.has(sha))
    .map((manifest) => ({ manifest, ...at, check, reason: why, tries: trial.tries, time }));
  // 1. The record says failed (a power cut after this repeats the fallback from here).
  await writeBootState(root, { ...state, trial: { ...trial, left: 0, state: 'failed', ...(failure ? { lastFailure: failure } : {}) }, failed: [...state.failed, ...newlyFailed].slice(-100) });
  await appendBootEvent(root, { ...at, event: 'failed', detail: reason, tries: trial.tries, manifests: newlyFailed.map((f) => f.manifest), now: ctx.now });
  // 2. The good generation's files as a new commit (a power cut after this is completed by the next boot).
  const { oid, number } = await commitGeneration({
    root,
    files: goodGen.files,
    message: `Fallback to generation ${good.generation}: generation ${trial.generation} failed (${reason.slice(0, 200)})`,
    now: ctx.now,
    parent: headOid,
  });
  // 3. The new commit is good; the trial is over.
  const { trial: _t, ...rest } = await readBootState(root).then((s) => s ?? state);
  await writeBootState(root, { ...rest, good: { generation: number, commit: oid, since: time } });
  await appendBootEvent(root, { generation: number, commit: oid, event: 'fallback', detail: `generation ${trial.generation} failed after ${trial.boots.length} of ${trial.tries} tries: back to generation ${good.generation}`, from: trial.generation, to: good.generation, now: ctx.now });
  ctx.log.warn(`generation ${trial.generation} failed (${reason}): fell back to generation ${good.generation} as generation ${number}`);
  return { generation: number, commit: oid, state: 'good', fallback: { from: trial.generation, fromCommit: trial.commit, to: good.generation, reason }, bootId: ctx.bootId };
}

/**
 * A trial generation the initrd could not assemble (a refused signature, digest or layer is no
 * transient fault): it fails at once, and the same boot falls back. Returns the fallback choice, or
 * undefined when there is nothing to fall back to.
 */
export async function failTrialNow(root: string, choice: BootChoice, failure: { check: string; reason: string }, opts: { readonly now?: Date; readonly log?: Logger } = {}): Promise<BootChoice | undefined> {
  const state = await readBootState(root).catch(() => undefined);
  if (state?.trial === undefined || state.trial.commit !== choice.commit || state.good === undefined) return undefined;
  const clock = await bootClock();
  const now = opts.now ?? new Date();
  const f: BootFailure = { ...failure, bootId: clock.bootId, uptime: clock.uptime, time: now.toISOString() };
  await appendBootEvent(root, { generation: choice.generation, commit: choice.commit, event: 'check-failed', check: f.check, detail: f.reason, now });
  return fallBack(root, state, state.trial, choice.commit, { now, log: opts.log ?? silentLogger, bootId: clock.bootId, failure: f });
}

/** `run/mosctl/booted.json`: what this boot's initrd assembled. */
export interface BootedRecord extends BootChoice {
  readonly target: string;
  readonly digest: string;
  /** The watchdog armed for this trial boot; `mosctl assess` takes it over. */
  readonly watchdog?: { readonly device: string; readonly timeout?: number };
}

/** Records what this boot assembled, for `mosctl boot`, `assess` and `status` in the booted host. */
export async function writeBootedRecord(root: string, choice: BootedRecord): Promise<void> {
  const file = systemPaths(root).bootedRecord;
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, JSON.stringify(choice) + '\n', { mode: 0o644 });
}

/** What the initrd of this boot assembled, or undefined (not booted by mosctl, or another boot's record). */
export async function readBootedRecord(root: string): Promise<BootedRecord | undefined> {
  try {
    const v = JSON.parse((await readFileLimited(systemPaths(root).bootedRecord, 64 * 1024)).toString('utf8')) as BootedRecord;
    if (typeof v.commit !== 'string' || typeof v.generation !== 'number') return undefined;
    const { bootId } = await bootClock();
    return v.bootId === bootId ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Arms the hardware watchdog for a trial boot: opened and closed without the magic 'V', the timer keeps
 * running, so unless `mosctl assess` takes it over and pets it, the machine resets after its timeout (a
 * hang becomes a counted try). Returns the timeout in seconds when sysfs tells it.
 */
export async function armWatchdog(device: string): Promise<number | undefined> {
  let fh;
  try {
    fh = await open(device, 'w');
    await fh.write('1');
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: device, message: `cannot arm the watchdog: ${(e as Error).message}`, cause: e });
  } finally {
    await fh?.close().catch(() => {});
  }
  // sysfs attributes report a size of 4096 whatever they hold: read directly, they are a few bytes.
  const name = device.replace(/^\/dev\//, '');
  const t = await readFile(`/sys/class/watchdog/${name === 'watchdog' ? 'watchdog0' : name}/timeout`, 'utf8').catch(() => undefined);
  const n = t === undefined ? NaN : Number(t.trim());
  if (Number.isInteger(n) && n > 0) return n;
  return undefined;
}
