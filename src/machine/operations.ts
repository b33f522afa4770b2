import { randomUUID } from 'node:crypto';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, isMosError, isRetryable, silentLogger, type ErrorCode, type Logger, type ProgressEvent } from '../base/index.js';
import { currentGeneration, readGeneration } from '../config/index.js';
import { ensureDir, readFileLimited, statOrAbsent, writeFileAtomic } from '../host/index.js';
import type { RegistryAccess } from '../oci/index.js';
import { activate, deactivate } from './activate.js';
import { applyLive, liveTargets, type ApplyLiveResult } from './apply-live.js';
import { systemGc } from './gc.js';
import { readBootEventsFrom, type BootEvent } from './boot-state.js';
import { systemPaths } from './paths.js';
import type { UpdatePlan } from './plan-update.js';
import { rollback } from './rollback.js';
import { tripleNames } from './sys-files.js';
import { update, type UpdateMode, type UpdateOptions, type UpdatePhase, type UpdateResult } from './update.js';
import type { InstallManifest } from '../manifest/index.js';
import type { PullNeed } from './pull-targets.js';

// The operation engine: the one place that runs a mutating operation on behalf of the upgrade API
// (and, through `runOperation`, of the local CLI), so that both front doors do exactly the same thing.
// Operations are persisted in config/operations/<id>.json and every change is journalled in
// config/events.jsonl with a sequence number, so a client that reconnects after a reboot resumes from
// its cursor and misses nothing.

/** How far an update goes: `apply` = `stage` + restart the live targets on their new images. */
export type OperationMode = UpdateMode | 'apply';

/** What an operation does; the API's `POST /v1/operations`, rollback and target endpoints make these. */
export type OperationRequest =
  | { readonly action: 'update'; readonly source: string; readonly mode: OperationMode; readonly allowDowngrade: boolean; readonly requireManifestDigest?: string }
  | { readonly action: 'rollback'; readonly to?: number }
  | { readonly action: 'activate'; readonly target: string }
  | { readonly action: 'deactivate'; readonly target: string }
  | { readonly action: 'gc'; readonly dryRun: boolean; readonly keep?: number };

export type OperationAction = OperationRequest['action'];

/**
 * Phases. Updates: queued → verifying → downloading → (download: downloaded) → applying (the commit
 * point) → staged (stage) or committed (apply). Other actions: queued → applying → committed. Any of
 * them may end failed or canceled; one the server did not finish (crash, reboot) reads interrupted.
 */
export type OperationPhase = 'queued' | 'verifying' | 'downloading' | 'downloaded' | 'applying' | 'staged' | 'committed' | 'failed' | 'canceled' | 'interrupted';

const TERMINAL: ReadonlySet<OperationPhase> = new Set(['downloaded', 'staged', 'committed', 'failed', 'canceled', 'interrupted']);
/** Phases before the commit point: a cancel is honoured in these. */
const CANCELABLE: ReadonlySet<OperationPhase> = new Set(['queued', 'verifying', 'downloading']);

export function isTerminal(phase: OperationPhase): boolean {
  return TERMINAL.has(phase);
}

/** Who asked (from the verified client certificate), as the audit log records it. */
export interface OperationClient {
  readonly subject: string;
  readonly fingerprint: string;
  readonly role: string;
}

export interface TargetProgress {
  readonly name: string;
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
}

export interface OperationProgress {
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
  targets: TargetProgress[];
}

export interface OperationError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly subject?: string;
  readonly hint?: string;
  /** The same request may succeed later unchanged (registry down, lock busy, canceled). */
  readonly retryable: boolean;
}

/** The resource `GET /v1/operations/{id}` returns; also the record on disk. */
export interface Operation {
  readonly id: string;
  readonly action: OperationAction;
  readonly request: OperationRequest;
  phase: OperationPhase;
  /** True until the commit point: `POST …/cancel` is honoured only then. */
  cancelable: boolean;
  readonly createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  readonly client?: OperationClient;
  readonly idempotencyKey?: string;
  /** The generation current when the operation was accepted. */
  readonly generationBefore: number;
  /** `<sha>` of the install manifest being applied, once it is verified. */
  manifest?: string;
  progress?: OperationProgress;
  result?: unknown;
  error?: OperationError;
  /** Set when the server stopped before the operation finished: what state the machine was left in. */
  interrupted?: { readonly during: OperationPhase; readonly generation: number; readonly commit: string; readonly committed: boolean; readonly message: string };
}

/** What an update operation returns: the update's result, and for `apply` what happened to live targets. */
export interface OperationUpdateResult extends Omit<UpdateResult, 'mode'> {
  readonly mode: OperationMode;
  readonly live?: ApplyLiveResult;
}

/**
 * An update in one of the three modes, as both front doors run it (`mosctl update --mode`, and the
 * API's operations): `download` and `stage` are update()'s; `apply` stages and then brings the live
 * container and fs-only targets to the new generation (applyLive).
 */
export async function performUpdate(opts: Omit<UpdateOptions, 'mode'> & { readonly mode: OperationMode }): Promise<OperationUpdateResult> {
  const applying = opts.mode === 'apply' && !opts.dryRun;
  const before = applying ? await liveTargets(opts.root) : [];
  const u = await update({ ...opts, mode: opts.mode === 'download' ? 'download' : 'stage' });
  if (!applying || u.noop) return { ...u, mode: opts.mode };
  const live = await applyLive({ root: opts.root, before, ...(opts.capath ? { capath: opts.capath } : {}), ...(opts.log ? { log: opts.log } : {}) });
  return { ...u, mode: opts.mode, live };
}

/** A dry run kept for an hour so that an operation can be bound to it (`planId`). */
export interface Plan extends Omit<UpdateResult, 'dryRun' | 'mode' | 'blobBytes' | 'repaired'> {
  readonly id: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly source: string;
  readonly allowDowngrade: boolean;
}

const PLAN_TTL_MS = 3_600_000;

/** One line of the event journal. */
export interface EngineEvent {
  readonly seq: number;
  readonly time: string;
  readonly type: 'server.started' | 'operation.created' | 'operation.phase' | 'operation.progress' | 'boot';
  readonly operation?: Pick<Operation, 'id' | 'action' | 'phase' | 'cancelable'> & Partial<Pick<Operation, 'progress' | 'error' | 'result' | 'interrupted' | 'manifest'>>;
  /**
   * `boot` events: one line of config/boot-events.jsonl (boot assessment: trying, assessing, good,
   * check-failed, failed, fallback, vote …), written by the initrd, `mosctl assess` or the CLI, with
   * its line number in that log. The journal takes them in as they appear.
   */
  readonly boot?: BootEvent & { readonly line: number };
}

/** How often the engine looks for new boot-assessment events (the log is appended by other processes). */
const BOOT_EVENTS_POLL_MS = 2000;

export interface EngineOptions extends RegistryAccess {
  readonly root: string;
  readonly capath?: string;
  readonly log?: Logger;
  /** Minimum time between two progress events of one operation (default 250 ms). */
  readonly progressIntervalMs?: number;
}

export interface SubmitOptions {
  readonly client?: OperationClient;
  readonly idempotencyKey?: string;
  /** Refuses an update after its plan is known (the API's mos:apps role may not touch hostfs). */
  readonly authorize?: (plan: UpdatePlan, incoming: InstallManifest, touched: { readonly hostfs: readonly string[] }) => void;
}

const MAX_RECORD_BYTES = 4 * 1024 * 1024;
const MAX_JOURNAL_BYTES = 256 * 1024 * 1024;

/** The same request (for an idempotency key), compared field by field in a fixed order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function errorOf(e: unknown): OperationError {
  const err = isMosError(e) ? e : new MosError({ code: 'INTERNAL', message: `internal error (a bug, please report it): ${e instanceof Error ? e.message : String(e)}` });
  return { code: err.code, message: err.message, ...(err.subject ? { subject: err.subject } : {}), ...(err.hint ? { hint: err.hint } : {}), retryable: isRetryable(err.code) };
}

/** The upgrade API's operation engine for one system root. One mutating operation runs at a time. */
export class OperationEngine {
  private readonly ops = new Map<string, Operation>();
  private readonly plans = new Map<string, Plan>();
  private readonly byKey = new Map<string, string>();
  private readonly controllers = new Map<string, AbortController>();
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly writes = new Map<string, Promise<void>>();
  private journal: Promise<void> = Promise.resolve();
  private seq = 0;
  /** Where the boot-event log was read up to (bytes, lines), and the last of its lines the journal holds. */
  private bootLog = { offset: 0, lines: 0 };
  private journaledBootLine = 0;
  private bootImport: Promise<void> = Promise.resolve();
  private bootTimer: NodeJS.Timeout | undefined;
  private current: { id: string; done: Promise<void> } | undefined;
  private readonly log: Logger;
  private readonly paths;

  private constructor(private readonly opts: EngineOptions) {
    this.log = opts.log ?? silentLogger;
    this.paths = systemPaths(opts.root);
  }

  /**
   * Loads the persisted operations and the journal's last sequence number. An operation left running
   * by a crash or reboot becomes `interrupted`, recording which generation is now current and whether
   * its commit happened.
   */
  static async open(opts: EngineOptions): Promise<OperationEngine> {
    const engine = new OperationEngine(opts);
    await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED: nothing to serve
    await ensureDir(engine.paths.operationsDir);
    await engine.loadJournal();
    await engine.loadOperations();
    await engine.emit('server.started');
    await engine.importBootEvents();
    engine.bootTimer = setInterval(() => void engine.importBootEvents(), BOOT_EVENTS_POLL_MS);
    engine.bootTimer.unref();
    return engine;
  }

  /** Stops following the boot-event log (the server's close). */
  stop(): void {
    clearInterval(this.bootTimer);
  }

  /**
   * Journals the boot-assessment events that appeared since the last look (all of them on a first
   * start, none twice across restarts: the journal's last `boot` event says which line it was).
   */
  importBootEvents(): Promise<void> {
    this.bootImport = this.bootImport.then(async () => {
      const st = await statOrAbsent(this.paths.bootEvents);
      if (!st) return;
      if (st.size < this.bootLog.offset) this.bootLog = { offset: 0, lines: 0 }; // replaced by a shorter file
      while (st.size > this.bootLog.offset) {
        const r = await readBootEventsFrom(this.opts.root, this.bootLog.offset);
        if (r.bytes === 0) break; // only an unfinished line so far
        for (const { index, event } of r.events) {
          const line = this.bootLog.lines + index + 1;
          if (line <= this.journaledBootLine) continue;
          this.journaledBootLine = line;
          await this.emit('boot', undefined, { ...event, line });
        }
        this.bootLog = { offset: this.bootLog.offset + r.bytes, lines: this.bootLog.lines + r.lines };
      }
    }).catch((e: unknown) => {
      this.log.warn('cannot read the boot-event log', { error: e instanceof Error ? e.message : String(e) });
    });
    return this.bootImport;
  }

  private async loadJournal(): Promise<void> {
    const st = await statOrAbsent(this.paths.eventsLog);
    if (!st) return;
    const text = (await readFileLimited(this.paths.eventsLog, MAX_JOURNAL_BYTES)).toString('utf8');
    const lines = text.split('\n');
    // A crash can tear the last line; it is dropped (its operation record says the truth). The last
    // sequence number, and the last boot-event line journaled (which can be far back), from the end.
    for (let i = lines.length - 1; i >= 0 && (this.seq === 0 || this.journaledBootLine === 0); i--) {
      try {
        const ev = JSON.parse(lines[i]!) as EngineEvent;
        if (this.seq === 0 && Number.isSafeInteger(ev.seq)) this.seq = ev.seq;
        if (this.journaledBootLine === 0 && Number.isSafeInteger(ev.boot?.line)) this.journaledBootLine = ev.boot!.line;
      } catch {
        /* torn or empty line */
      }
    }
    if (!text.endsWith('\n') && text.length > 0) await appendFile(this.paths.eventsLog, '\n');
  }

  private async loadOperations(): Promise<void> {
    const names = (await readdir(this.paths.operationsDir)).filter((n) => /^[0-9a-f-]{36}\.json$/.test(n));
    const head = await currentGeneration({ root: this.opts.root });
    for (const n of names) {
      const file = join(this.paths.operationsDir, n);
      let op: Operation;
      try {
        op = JSON.parse((await readFileLimited(file, MAX_RECORD_BYTES)).toString('utf8')) as Operation;
      } catch (e) {
        this.log.warn('ignoring an unreadable operation record', { file, error: e instanceof Error ? e.message : String(e) });
        continue;
      }
      if (!isTerminal(op.phase)) {
        const during = op.phase;
        let committed = false;
        if (op.manifest && head.number > op.generationBefore) {
          const gen = await readGeneration({ root: this.opts.root });
          committed = gen.files.has(tripleNames(op.manifest).json);
        } else if (op.action === 'rollback') committed = head.number > op.generationBefore;
        op.phase = 'interrupted';
        op.cancelable = false;
        op.interrupted = {
          during,
          generation: head.number,
          commit: head.oid,
          committed,
          message: committed
            ? `the server stopped after the commit: generation ${head.number} (the new one) is current`
            : `the server stopped during ${during}: generation ${head.number} is current and nothing was committed`,
        };
        op.updatedAt = op.finishedAt = new Date().toISOString();
        await this.persist(op);
        await this.emit('operation.phase', op);
      }
      this.ops.set(op.id, op);
      if (op.idempotencyKey) this.byKey.set(op.idempotencyKey, op.id);
    }
  }

  /** Operations, newest first. */
  list(): Operation[] {
    return [...this.ops.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  get(id: string): Operation {
    const op = this.ops.get(id);
    if (!op) throw new MosError({ code: 'API_OPERATION_UNKNOWN', subject: `operation ${id}`, message: 'no such operation' });
    return op;
  }

  /**
   * A dry run of an update: fetches and verifies the manifest, plans the merge and measures what must
   * be fetched; writes nothing. The plan is kept (in memory, for PLAN_TTL_MS) so that an operation can
   * refer to it by id and is then bound to exactly the manifest the plan saw.
   */
  async plan(source: string, opts: { allowDowngrade?: boolean; authorize?: SubmitOptions['authorize'] } = {}): Promise<Plan> {
    const r = await update({
      root: this.opts.root,
      source,
      ...this.access(),
      ...this.capath(),
      allowDowngrade: opts.allowDowngrade ?? false,
      dryRun: true,
      ...(opts.authorize ? { authorize: opts.authorize } : {}),
      log: this.log,
    });
    const now = Date.now();
    for (const [id, p] of this.plans) if (Date.parse(p.expiresAt) < now) this.plans.delete(id);
    const { dryRun: _d, mode: _m, blobBytes: _b, repaired: _r, ...rest } = r;
    const plan: Plan = { ...rest, id: randomUUID(), createdAt: new Date(now).toISOString(), expiresAt: new Date(now + PLAN_TTL_MS).toISOString(), source, allowDowngrade: opts.allowDowngrade ?? false };
    this.plans.set(plan.id, plan);
    return plan;
  }

  getPlan(id: string): Plan {
    const p = this.plans.get(id);
    if (!p || Date.parse(p.expiresAt) < Date.now()) throw new MosError({ code: 'API_PLAN_UNKNOWN', subject: `plan ${id}`, message: 'no such plan (plans live one hour and not across restarts)', hint: 'make a new plan' });
    return p;
  }

  /** The mutating operation running now, if any. */
  running(): Operation | undefined {
    const op = this.current ? this.ops.get(this.current.id) : undefined;
    // Its terminal phase is announced before its record is flushed: a client told it is done may go on.
    return op && !isTerminal(op.phase) ? op : undefined;
  }

  /** The last sequence number written to the journal. */
  lastSeq(): number {
    return this.seq;
  }

  /**
   * Accepts a request and starts it in the background; returns the new operation, or the existing one
   * when `idempotencyKey` was used before for the same request (`created: false`). Throws API_BUSY
   * naming the operation that runs, API_IDEMPOTENCY_CONFLICT when the key was used for another request.
   */
  async submit(request: OperationRequest, opts: SubmitOptions = {}): Promise<{ operation: Operation; created: boolean }> {
    if (opts.idempotencyKey !== undefined) {
      const prior = this.byKey.get(opts.idempotencyKey);
      if (prior !== undefined) {
        const op = this.get(prior);
        if (canonical(op.request) !== canonical(request)) {
          throw new MosError({
            code: 'API_IDEMPOTENCY_CONFLICT',
            subject: `idempotency key ${JSON.stringify(opts.idempotencyKey)}`,
            message: `was used for operation ${op.id} with a different request`,
            hint: 'use a new key for a new request',
          });
        }
        return { operation: op, created: false };
      }
    }
    const busy = this.running();
    if (busy) {
      throw new MosError({
        code: 'API_BUSY',
        subject: `operation ${busy.id}`,
        message: `${busy.action} is ${busy.phase}: one mutating operation runs at a time`,
        hint: `wait for it (GET /v1/operations/${busy.id}) or cancel it`,
      });
    }
    // Accepting takes a few awaits; the reservation keeps a second request from slipping in meanwhile.
    if (this.accepting) throw new MosError({ code: 'API_BUSY', subject: 'operations', message: 'another mutating request is being accepted right now', hint: 'retry in a moment' });
    this.accepting = true;
    try {
      return await this.accept(request, opts);
    } finally {
      this.accepting = false;
    }
  }

  private accepting = false;

  private async accept(request: OperationRequest, opts: SubmitOptions): Promise<{ operation: Operation; created: boolean }> {
    const head = await currentGeneration({ root: this.opts.root });
    const now = new Date().toISOString();
    const op: Operation = {
      id: randomUUID(),
      action: request.action,
      request,
      phase: 'queued',
      cancelable: true,
      createdAt: now,
      updatedAt: now,
      ...(opts.client ? { client: opts.client } : {}),
      ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
      generationBefore: head.number,
    };
    this.ops.set(op.id, op);
    if (op.idempotencyKey !== undefined) this.byKey.set(op.idempotencyKey, op.id);
    const controller = new AbortController();
    this.controllers.set(op.id, controller);
    await this.persist(op);
    await this.emit('operation.created', op);
    const done = this.execute(op, controller.signal, opts).finally(() => {
      this.controllers.delete(op.id);
      this.blobs.delete(op.id);
      this.lastProgress.delete(op.id);
      if (this.current?.id === op.id) this.current = undefined;
    });
    this.current = { id: op.id, done };
    return { operation: op, created: true };
  }

  /**
   * Cancels an operation before its commit point: the old generation stays current and no partial
   * file is left (blob writes remove their temp file). Throws API_NOT_CANCELABLE past that point.
   */
  cancel(id: string): Operation {
    const op = this.get(id);
    const controller = this.controllers.get(id);
    if (!op.cancelable || !controller) {
      throw new MosError({
        code: 'API_NOT_CANCELABLE',
        subject: `operation ${id}`,
        message: isTerminal(op.phase) ? `has already finished (${op.phase})` : `is ${op.phase}: past its commit point`,
      });
    }
    controller.abort(new MosError({ code: 'CANCELED', subject: `operation ${id}`, message: 'canceled by request before its commit point; nothing changed' }));
    return op;
  }

  /** Resolves when no operation runs (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.current) await this.current.done.catch(() => {});
  }

  /** Journal events with seq > `after`, oldest first (read from the journal file). */
  async eventsAfter(after: number, limit = 10_000): Promise<EngineEvent[]> {
    await this.journal;
    const st = await statOrAbsent(this.paths.eventsLog);
    if (!st) return [];
    const out: EngineEvent[] = [];
    for (const line of (await readFileLimited(this.paths.eventsLog, MAX_JOURNAL_BYTES)).toString('utf8').split('\n')) {
      if (!line) continue;
      try {
        const ev = JSON.parse(line) as EngineEvent;
        if (ev.seq > after) out.push(ev);
        if (out.length >= limit) break;
      } catch {
        /* a torn line from a crash */
      }
    }
    return out;
  }

  /** Calls `fn` with every event from now on; returns the unsubscribe function. */
  subscribe(fn: (e: EngineEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private async execute(op: Operation, signal: AbortSignal, opts: SubmitOptions): Promise<void> {
    const r = op.request;
    try {
      let result: unknown;
      let final: OperationPhase = 'committed';
      switch (r.action) {
        case 'update': {
          result = await this.runUpdate(op, r, signal, opts);
          this.finishProgress(op);
          final = r.mode === 'download' ? 'downloaded' : r.mode === 'stage' ? 'staged' : 'committed';
          break;
        }
        case 'rollback':
          signal.throwIfAborted();
          await this.setPhase(op, 'applying');
          result = await rollback({ root: this.opts.root, ...(r.to !== undefined ? { to: r.to } : {}), ...this.capath(), log: this.log });
          break;
        case 'activate':
          signal.throwIfAborted();
          await this.setPhase(op, 'applying');
          result = await activate({ root: this.opts.root, target: r.target, ...this.capath(), log: this.log });
          break;
        case 'deactivate':
          signal.throwIfAborted();
          await this.setPhase(op, 'applying');
          result = await deactivate({ root: this.opts.root, target: r.target, log: this.log });
          break;
        case 'gc':
          signal.throwIfAborted();
          await this.setPhase(op, 'applying');
          result = await systemGc({ root: this.opts.root, dryRun: r.dryRun, ...(r.keep !== undefined ? { keep: r.keep } : {}), log: this.log });
          break;
      }
      op.result = result;
      await this.setPhase(op, final);
    } catch (e) {
      const canceled = signal.aborted && op.cancelable;
      op.error = errorOf(canceled ? signal.reason : e);
      this.log.warn(`operation ${op.id} ${canceled ? 'canceled' : 'failed'}`, { code: op.error.code, error: op.error.message });
      await this.setPhase(op, canceled ? 'canceled' : 'failed');
    }
  }

  private capath(): { capath?: string } {
    return this.opts.capath ? { capath: this.opts.capath } : {};
  }

  private access(): RegistryAccess {
    return {
      ...(this.opts.insecureHosts ? { insecureHosts: this.opts.insecureHosts } : {}),
      ...(this.opts.caFiles ? { caFiles: this.opts.caFiles } : {}),
      ...(this.opts.authFile ? { authFile: this.opts.authFile } : {}),
      ...(this.opts.limits ? { limits: this.opts.limits } : {}),
      ...(this.opts.registriesConf ? { registriesConf: this.opts.registriesConf } : {}),
    };
  }

  private async runUpdate(op: Operation, r: Extract<OperationRequest, { action: 'update' }>, signal: AbortSignal, opts: SubmitOptions): Promise<OperationUpdateResult> {
    const onPhase = (phase: UpdatePhase, detail?: { needs: readonly PullNeed[]; manifest: string }): void => {
      if (detail) {
        op.manifest = detail.manifest;
        if (phase === 'downloading') this.startProgress(op, detail.needs);
      }
      // Synchronous state change first: a cancel arriving after `applying` is refused, not lost.
      if (phase === 'applying') {
        op.cancelable = false;
        this.finishProgress(op);
      }
      void this.setPhase(op, phase);
    };
    return performUpdate({
      root: this.opts.root,
      source: r.source,
      ...this.access(),
      ...this.capath(),
      allowDowngrade: r.allowDowngrade,
      mode: r.mode,
      ...(r.requireManifestDigest ? { requireManifestDigest: r.requireManifestDigest } : {}),
      ...(opts.authorize ? { authorize: opts.authorize } : {}),
      onPhase,
      onProgress: (ev) => this.progress(op, ev),
      signal,
      log: this.log,
    });
  }

  private readonly lastProgress = new Map<string, number>();
  /** Per running operation: blob digest → the targets it belongs to and the bytes of it seen so far. */
  private readonly blobs = new Map<string, Map<string, { targets: TargetProgress[]; done: number }>>();

  private startProgress(op: Operation, needs: readonly PullNeed[]): void {
    const targets = needs.map((n) => ({ name: n.target, bytesDone: 0, bytesTotal: n.bytes, layersDone: 0, layersTotal: n.blobs.length }));
    const blobs = new Map<string, { targets: TargetProgress[]; done: number }>();
    needs.forEach((n, i) => {
      for (const b of n.blobs) {
        const e = blobs.get(b.digest) ?? { targets: [], done: 0 };
        e.targets.push(targets[i]!);
        blobs.set(b.digest, e);
      }
    });
    this.blobs.set(op.id, blobs);
    op.progress = {
      bytesDone: 0,
      bytesTotal: targets.reduce((n, t) => n + t.bytesTotal, 0),
      layersDone: 0,
      layersTotal: targets.reduce((n, t) => n + t.layersTotal, 0),
      targets,
    };
  }

  /**
   * The download is over (its blobs are all in the store): the totals are reached, including blobs a
   * copy does not report byte by byte (image manifests). One last progress event says so.
   */
  private finishProgress(op: Operation): void {
    const p = op.progress;
    if (!p || !this.blobs.has(op.id)) return;
    this.blobs.delete(op.id);
    for (const t of p.targets) {
      t.bytesDone = t.bytesTotal;
      t.layersDone = t.layersTotal;
    }
    p.bytesDone = p.bytesTotal;
    p.layersDone = p.layersTotal;
    void this.emit('operation.progress', op);
  }

  private progress(op: Operation, ev: ProgressEvent): void {
    const p = op.progress;
    const blob = ev.kind !== 'blob' && ev.kind !== 'blob-done' ? undefined : this.blobs.get(op.id)?.get(ev.digest);
    if (!p || (ev.kind !== 'blob' && ev.kind !== 'blob-done') || !blob) return;
    const done = ev.kind === 'blob' ? ev.done : ev.total;
    for (const t of blob.targets) {
      t.bytesDone += done - blob.done;
      if (ev.kind === 'blob-done') t.layersDone += 1;
    }
    blob.done = done;
    p.bytesDone = p.targets.reduce((n, t) => n + t.bytesDone, 0);
    p.layersDone = p.targets.reduce((n, t) => n + t.layersDone, 0);
    const now = Date.now();
    if (ev.kind === 'blob-done' || now - (this.lastProgress.get(op.id) ?? 0) >= (this.opts.progressIntervalMs ?? 250)) {
      this.lastProgress.set(op.id, now);
      op.updatedAt = new Date(now).toISOString();
      void this.emit('operation.progress', op);
      void this.persist(op);
    }
  }

  private async setPhase(op: Operation, phase: OperationPhase): Promise<void> {
    op.phase = phase;
    if (!CANCELABLE.has(phase)) op.cancelable = false;
    op.updatedAt = new Date().toISOString();
    if (isTerminal(phase)) op.finishedAt = op.updatedAt;
    await Promise.all([this.persist(op), this.emit('operation.phase', op)]);
  }

  /** Writes the record atomically; writes of one operation are queued in order. */
  private persist(op: Operation): Promise<void> {
    const file = join(this.paths.operationsDir, `${op.id}.json`);
    const text = JSON.stringify(op, null, 2) + '\n';
    const next = (this.writes.get(op.id) ?? Promise.resolve()).then(() => writeFileAtomic(file, text, { mode: 0o600 }));
    const tail = next.catch((e: unknown) => this.log.warn('cannot persist an operation record', { file, error: e instanceof Error ? e.message : String(e) }));
    this.writes.set(op.id, tail);
    return tail;
  }

  private emit(type: EngineEvent['type'], op?: Operation, boot?: EngineEvent['boot']): Promise<void> {
    const ev: EngineEvent = {
      seq: ++this.seq,
      time: new Date().toISOString(),
      type,
      ...(boot ? { boot } : {}),
      ...(op
        ? {
            operation: {
              id: op.id,
              action: op.action,
              phase: op.phase,
              cancelable: op.cancelable,
              ...(op.manifest ? { manifest: op.manifest } : {}),
              ...(op.progress ? { progress: op.progress } : {}),
              ...(op.error ? { error: op.error } : {}),
              ...(op.interrupted ? { interrupted: op.interrupted } : {}),
              ...(isTerminal(op.phase) && op.result !== undefined ? { result: op.result } : {}),
            },
          }
        : {}),
    };
    const line = JSON.stringify(ev) + '\n';
    this.journal = this.journal.then(() => appendFile(this.paths.eventsLog, line, { mode: 0o600 })).catch((e: unknown) => {
      this.log.warn('cannot append to the event journal', { error: e instanceof Error ? e.message : String(e) });
    });
    for (const fn of this.listeners) fn(ev);
    return this.journal;
  }
}
