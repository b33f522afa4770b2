import { MosError } from '../base/index.js';
import { exec } from '../host/index.js';
import { currentGeneration, lockConfig } from '../config/index.js';
import { readBootedRecord, type BootChoice } from './boot-choice.js';
import {
  DEFAULT_TRIES, appendBootEvent, assessmentOf, trialOf, bootClock, readBootEvents, readBootState, writeBootState,
  type AssessmentState, type BootEvent, type BootState, type FailedManifest, type GenerationRef, type Trial,
} from './boot-state.js';

// The writers' side of boot assessment: what install, update and rollback record, the known-bad check,
// the operators' mark-good / mark-bad, and the view `status` shows. The initrd's side is boot-choice.ts,
// the booted host's is assess.ts.

/** install: generation 1 is good (there is nothing to fall back to; the installer was its assessment). */
export async function recordInstalled(root: string, at: GenerationRef, opts: { tries?: number; now?: Date } = {}): Promise<void> {
  const time = (opts.now ?? new Date()).toISOString();
  await writeBootState(root, { version: 1, tries: opts.tries ?? DEFAULT_TRIES, good: { ...at, since: time }, failed: [] });
  await appendBootEvent(root, { ...at, event: 'good', detail: 'installed', ...(opts.now ? { now: opts.now } : {}) });
}

/**
 * Reads the record before a writer changes anything: CONFIG_CORRUPT refuses the command up front (so
 * it changes nothing), and an install manifest that already fell back is refused unless retried.
 */
export async function checkIncoming(root: string, manifest: string, retryFailed: boolean): Promise<BootState | undefined> {
  const state = await readBootState(root);
  const failed = state?.failed.find((f) => f.manifest === manifest);
  if (failed !== undefined && !retryFailed) {
    throw new MosError({
      code: 'SYSTEM_MANIFEST_FAILED',
      subject: `install manifest ${manifest.slice(0, 12)}`,
      message: `failed its boot assessment as generation ${failed.generation} (${failed.check}: ${failed.reason}) and the machine fell back`,
      hint: 'publish a fixed release, or try this one again with --retry-failed',
    });
  }
  return state;
}

/**
 * After update or rollback committed generation `at` on top of `previous`: it is pending with a fresh
 * count of tries. A system without a record (installed before boot assessment) takes the generation it
 * ran as good. A retried manifest leaves the failed list.
 */
export async function recordNewGeneration(root: string, at: GenerationRef, previous: GenerationRef, opts: { tries?: number; retried?: string; now?: Date } = {}): Promise<void> {
  const now = opts.now ?? new Date();
  const state: BootState = (await readBootState(root).catch(() => undefined)) ?? { version: 1, tries: DEFAULT_TRIES, good: { ...previous, since: now.toISOString() }, failed: [] };
  const tries = opts.tries ?? state.tries;
  const trial = trialOf(state, at, tries); // a new commit: always a fresh trial
  const failed = opts.retried === undefined ? state.failed : state.failed.filter((f) => f.manifest !== opts.retried);
  await writeBootState(root, { ...state, trial, failed });
  await appendBootEvent(root, { ...at, event: 'pending', detail: `${tries} tr${tries === 1 ? 'y' : 'ies'}`, now });
}

/** The boot-assessment view of the machine (`status`, `GET /v1/boot`). */
export interface BootStatus {
  /** The current generation's state. */
  readonly state: AssessmentState;
  readonly generation: number;
  readonly commit: string;
  /** What this boot's initrd assembled (absent when not booted by a mosctl initrd). */
  readonly booted?: BootChoice;
  readonly good?: GenerationRef & { readonly since: string };
  readonly trial?: Trial;
  readonly failed: readonly FailedManifest[];
  /** Newest last. */
  readonly events: readonly BootEvent[];
}

export async function bootStatus(root: string, opts: { events?: number } = {}): Promise<BootStatus> {
  const head = await currentGeneration({ root });
  const state = await readBootState(root);
  const booted = await readBootedRecord(root);
  return {
    // The API's serializer writes the required fields first: the same order here keeps both outputs equal.
    state: assessmentOf(state, head.oid),
    generation: head.number,
    commit: head.oid,
    failed: state?.failed ?? [],
    events: await readBootEvents(root, { last: opts.events ?? 10 }),
    ...(booted ? { booted } : {}),
    ...(state?.good ? { good: state.good } : {}),
    ...(state?.trial && state.trial.commit === head.oid ? { trial: state.trial } : {}),
  };
}

/** `mosctl mark-good`: an operator blesses the current generation (no window, no checks). */
export async function markGood(root: string, opts: { by?: string; now?: Date; dryRun?: boolean } = {}): Promise<BootStatus> {
  if (opts.dryRun) return bootStatus(root); // nothing to refuse: any current generation can be blessed
  {
    await using _lock = await lockConfig(root, { wait: true, timeoutMs: 30_000 });
    const head = await currentGeneration({ root });
    const state = (await readBootState(root)) ?? { version: 1 as const, tries: DEFAULT_TRIES, failed: [] };
    const at = { generation: head.number, commit: head.oid };
    if (state.good?.commit !== head.oid) {
      const { trial: _t, ...rest } = state;
      await writeBootState(root, { ...rest, good: { ...at, since: (opts.now ?? new Date()).toISOString() } });
      await appendBootEvent(root, { ...at, event: 'marked-good', detail: `by ${opts.by ?? 'operator'}`, ...(opts.now ? { now: opts.now } : {}) });
    }
  }
  return bootStatus(root);
}

/**
 * `mosctl mark-bad [--reason R]`: the current trial generation gets no more tries; the next boot falls
 * back to the good one (`--reboot` to do it now). A good generation is not marked bad: roll back instead.
 */
export async function markBad(root: string, opts: { reason?: string; by?: string; now?: Date; dryRun?: boolean } = {}): Promise<BootStatus> {
  {
    await using _lock = opts.dryRun ? undefined : await lockConfig(root, { wait: true, timeoutMs: 30_000 });
    const head = await currentGeneration({ root });
    const state = await readBootState(root);
    const at = { generation: head.number, commit: head.oid };
    if (state === undefined || state.good === undefined || state.good.commit === head.oid) {
      throw new MosError({
        code: 'INPUT_INVALID',
        subject: `generation ${head.number}`,
        message: state?.good?.commit === head.oid ? 'is the good generation: there is nothing to fall back to from it' : 'no generation is known good to fall back to',
        hint: 'make an earlier generation current with mosctl rollback',
      });
    }
    const trial = trialOf(state, at);
    if (opts.dryRun) return bootStatus(root); // the refusals above are the dry run's checks
    const clock = await bootClock();
    const time = (opts.now ?? new Date()).toISOString();
    const reason = opts.reason ?? `marked bad by ${opts.by ?? 'operator'}`;
    await writeBootState(root, { ...state, trial: { ...trial, left: 0, lastFailure: { check: 'operator', reason, ...clock, time } } });
    await appendBootEvent(root, { ...at, event: 'marked-bad', detail: reason, ...(opts.now ? { now: opts.now } : {}) });
  }
  return bootStatus(root);
}

/** `systemctl reboot` (mark-bad --reboot). */
export async function rebootHost(): Promise<void> {
  await exec(['systemctl', 'reboot'], { timeoutMs: 30_000 });
}

/** A workload's vote on the current trial generation (`POST /v1/boot/vote`); `mosctl assess --vote` waits for it. */
export async function voteBoot(root: string, vote: { good: boolean; reason?: string; by: string; now?: Date }): Promise<BootStatus> {
  {
    await using _lock = await lockConfig(root, { wait: true, timeoutMs: 30_000 });
    const head = await currentGeneration({ root });
    const state = await readBootState(root);
    const trial = state?.trial;
    if (state === undefined || trial === undefined || trial.commit !== head.oid || trial.state === 'failed') {
      throw new MosError({ code: 'INPUT_INVALID', subject: `generation ${head.number}`, message: 'is not on trial: there is nothing to vote on', hint: 'see mosctl status' });
    }
    if (trial.state === 'pending') {
      // A vote says "this boot serves": before the generation runs there is nothing to judge.
      throw new MosError({ code: 'INPUT_INVALID', subject: `generation ${head.number}`, message: 'has not booted yet: vote once it runs (its trial is pending)', hint: 'see mosctl status' });
    }
    const time = (vote.now ?? new Date()).toISOString();
    await writeBootState(root, { ...state, trial: { ...trial, vote: { good: vote.good, by: vote.by, time, ...(vote.reason !== undefined ? { reason: vote.reason } : {}) } } });
    await appendBootEvent(root, { generation: head.number, commit: head.oid, event: 'vote', detail: `${vote.good ? 'good' : 'bad'} by ${vote.by}${vote.reason ? `: ${vote.reason}` : ''}`, ...(vote.now ? { now: vote.now } : {}) });
  }
  return bootStatus(root);
}
