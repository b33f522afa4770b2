import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { load as loadYaml } from 'js-yaml';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { currentGeneration, lockConfig } from '../config/index.js';
import { exec, readFileLimited, statOrAbsent } from '../host/index.js';
import { readBootedRecord } from './boot-choice.js';
import { appendBootEvent, bootClock, checkTries, readBootState, trialOf, writeBootState, DEFAULT_TRIES, type BootFailure, type Trial } from './boot-state.js';
import { cachedStatusModel } from './runtime-view.js';

// `mosctl assess`, run by mos-assess.service in the booted host after `mosctl boot`: a trial generation
// becomes good only when, for a whole window on the monotonic clock, the required units are active,
// every container target is RUNNING, every check the hostfs ships in /etc/mosctl/health.d passes (at
// the start and at the end) and, when asked for, a workload voted good through the API. "No failed
// units" never blesses anything: every signal is a positive one. The first failing check records
// why and reboots at once, which counts a try (the initrd took it before this boot mounted anything).

/** The defaults a hostfs image can set in `/etc/mosctl/assess.yaml` (flags override them). */
export interface AssessConfig {
  /** Seconds the generation must stay healthy (default 300). */
  readonly window: number;
  /** Seconds between polls of units and containers (default 5). */
  readonly interval: number;
  /** systemd units and targets that must be active (default multi-user.target, mos-boot-setup.service). */
  readonly units: readonly string[];
  /** Seconds one health.d check may take (default 60). */
  readonly checkTimeout: number;
  /** Wait for a workload's vote (`POST /v1/boot/vote`) before blessing (default false). */
  readonly vote: boolean;
  /** Tries new generations get from now on (default 2). */
  readonly tries?: number;
}

export const ASSESS_DEFAULTS: AssessConfig = { window: 300, interval: 5, units: ['multi-user.target', 'mos-boot-setup.service'], checkTimeout: 60, vote: false };

const CONFIG_KEYS = new Set(['window', 'interval', 'units', 'checkTimeout', 'vote', 'tries']);
const UNIT_RE = /^[A-Za-z0-9:_.@\\-]{1,255}$/;

/** Reads `<root>/etc/mosctl/assess.yaml` over the defaults; any wrong field is CONFIG_INVALID naming it. */
export async function readAssessConfig(root: string, file = join(root, 'etc', 'mosctl', 'assess.yaml')): Promise<AssessConfig> {
  if (!(await statOrAbsent(file))) return ASSESS_DEFAULTS;
  let v: unknown;
  try {
    v = loadYaml((await readFileLimited(file, 64 * 1024)).toString('utf8'));
  } catch (e) {
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'CONFIG_INVALID', subject: file, message: `is not YAML: ${(e as Error).message.split('\n')[0]}` });
  }
  if (v === null || v === undefined) return ASSESS_DEFAULTS;
  if (typeof v !== 'object' || Array.isArray(v)) throw new MosError({ code: 'CONFIG_INVALID', subject: file, message: 'must be a mapping (window, interval, units, checkTimeout, vote, tries)' });
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!CONFIG_KEYS.has(k)) throw new MosError({ code: 'CONFIG_INVALID', subject: `${file}: ${k}`, message: 'is not a setting', hint: `settings: ${[...CONFIG_KEYS].join(', ')}` });
  const num = (k: string, min: number, max: number): number | undefined => {
    const x = o[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) throw new MosError({ code: 'CONFIG_INVALID', subject: `${file}: ${k}`, message: `must be a number from ${min} to ${max}` });
    return x;
  };
  const units = o['units'];
  if (units !== undefined && (!Array.isArray(units) || !units.every((u) => typeof u === 'string' && UNIT_RE.test(u)))) {
    throw new MosError({ code: 'CONFIG_INVALID', subject: `${file}: units`, message: 'must be a list of systemd unit names' });
  }
  if (o['vote'] !== undefined && typeof o['vote'] !== 'boolean') throw new MosError({ code: 'CONFIG_INVALID', subject: `${file}: vote`, message: 'must be true or false' });
  const tries = num('tries', 1, 10);
  return {
    window: num('window', 0, 86_400) ?? ASSESS_DEFAULTS.window,
    interval: num('interval', 0.1, 3600) ?? ASSESS_DEFAULTS.interval,
    units: (units as string[] | undefined) ?? ASSESS_DEFAULTS.units,
    checkTimeout: num('checkTimeout', 1, 3600) ?? ASSESS_DEFAULTS.checkTimeout,
    vote: (o['vote'] as boolean | undefined) ?? false,
    ...(tries !== undefined ? { tries: checkTries(tries, `${file}: tries`) } : {}),
  };
}

export interface AssessOptions extends Partial<AssessConfig> {
  readonly root: string;
  /** Executables run as health checks; default `<root>/etc/mosctl/health.d`. */
  readonly checksDir?: string;
  /** Reboot at once when a check fails (default true; `--no-reboot` leaves it to the operator). */
  readonly reboot?: boolean;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  /** Called once per poll with the seconds elapsed (progress). */
  readonly onTick?: (elapsed: number, window: number) => void;
}

export interface AssessResult {
  /** `good`: blessed now; `failed`: a check failed (a reboot follows unless --no-reboot); `skipped`: nothing to assess. */
  readonly outcome: 'good' | 'failed' | 'skipped';
  readonly generation: number;
  readonly commit: string;
  readonly detail: string;
  readonly failure?: BootFailure;
  /** Seconds the window ran. */
  readonly elapsed: number;
  readonly checks: readonly string[];
  readonly rebooting: boolean;
}

class CheckFailed extends Error {
  constructor(readonly check: string, readonly reason: string) {
    super(`${check}: ${reason}`);
  }
}

/** Assesses the booted trial generation; see the module comment. */
export async function assess(opts: AssessOptions): Promise<AssessResult> {
  const log = opts.log ?? silentLogger;
  const file = await readAssessConfig(opts.root);
  const cfg: AssessConfig = {
    window: opts.window ?? file.window,
    interval: opts.interval ?? file.interval,
    units: opts.units ?? file.units,
    checkTimeout: opts.checkTimeout ?? file.checkTimeout,
    vote: opts.vote ?? file.vote,
    ...(opts.tries ?? file.tries ? { tries: opts.tries ?? file.tries } : {}),
  };
  const head = await currentGeneration({ root: opts.root });
  const at = { generation: head.number, commit: head.oid };
  const state = await readBootState(opts.root);
  const booted = await readBootedRecord(opts.root);
  const skipped = (detail: string): AssessResult => ({ outcome: 'skipped', ...at, detail, elapsed: 0, checks: [], rebooting: false });
  // Nothing to assess, but the initrd armed the watchdog for this boot: disarm it, or it resets a healthy machine.
  const skip = async (detail: string): Promise<AssessResult> => {
    if (booted?.watchdog) await (await openWatchdog(booted.watchdog.device, log))?.close(true);
    return skipped(detail);
  };
  if (cfg.tries !== undefined && state !== undefined && state.tries !== cfg.tries) {
    await using _lock = await lockConfig(opts.root, { wait: true, timeoutMs: 60_000 });
    const now = await readBootState(opts.root);
    if (now !== undefined) await writeBootState(opts.root, { ...now, tries: cfg.tries });
  }
  if (state === undefined) return await skip(`generation ${head.number} has no boot-assessment record (installed before boot assessment): nothing to assess`);
  if (state.good?.commit === head.oid) return await skip(`generation ${head.number} is good`);
  if (booted !== undefined && booted.commit !== head.oid) {
    return await skip(`this boot runs generation ${booted.generation}; generation ${head.number} is staged for the next boot and is assessed then`);
  }
  if (state.trial?.state === 'failed') return await skip(`generation ${head.number} is out of tries: the next boot falls back to generation ${state.good?.generation ?? '?'}`);
  const checksDir = opts.checksDir ?? join(opts.root, 'etc', 'mosctl', 'health.d');
  const checks = await listChecks(checksDir, log);

  await setTrial(opts.root, head.oid, (t) => ({ ...t, state: 'assessing' }), { ...at, tries: state.tries || DEFAULT_TRIES });
  await appendBootEvent(opts.root, { ...at, event: 'assessing', detail: `window ${cfg.window} s, units ${cfg.units.join(' ') || '(none)'}, ${checks.length} health check${checks.length === 1 ? '' : 's'}${cfg.vote ? ', a vote' : ''}` });
  log.info(`assessing generation ${head.number}: ${cfg.window} s window, ${checks.length} health checks`);

  const dog = booted?.watchdog ? await openWatchdog(booted.watchdog.device, log) : undefined;
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const model = cachedStatusModel(opts.root);
  try {
    await runChecks(checks, cfg.checkTimeout, opts.signal, dog);
    for (;;) {
      await dog?.pet();
      await pollOnce(opts.root, head.oid, cfg, model, opts.signal);
      opts.onTick?.(elapsed(), cfg.window);
      if (elapsed() >= cfg.window) break;
      await sleep(Math.min(cfg.interval, cfg.window - elapsed()) * 1000, opts.signal);
    }
    await runChecks(checks, cfg.checkTimeout, opts.signal, dog);
    await pollOnce(opts.root, head.oid, cfg, model, opts.signal);
    if (cfg.vote) {
      const t = (await readBootState(opts.root))?.trial;
      if (t?.vote?.good !== true) throw new CheckFailed('vote', 'no workload voted the generation good within the window');
    }
  } catch (e) {
    if (!(e instanceof CheckFailed)) {
      await dog?.close(false);
      throw e;
    }
    const clock = await bootClock();
    const failure: BootFailure = { check: e.check, reason: e.reason.slice(0, 2000), ...clock, time: new Date().toISOString() };
    const t = await setTrial(opts.root, head.oid, (tr) => ({ ...tr, state: 'trying', lastFailure: failure }), { ...at, tries: state.tries || DEFAULT_TRIES });
    const next = t.left > 0 ? `the next boot is try ${t.tries - t.left + 1} of ${t.tries}` : `no tries left: the next boot falls back to generation ${state.good?.generation ?? '?'}`;
    await appendBootEvent(opts.root, { ...at, event: 'check-failed', check: e.check, detail: e.reason.slice(0, 2000), left: t.left });
    log.warn(`generation ${head.number}: ${e.check} failed: ${e.reason}; ${next}`);
    const rebooting = opts.reboot !== false;
    // The watchdog stays armed: if the reboot itself hangs, the hardware resets the machine.
    await dog?.close(false);
    if (rebooting) await exec(['systemctl', 'reboot'], { timeoutMs: 30_000 }).catch((x: unknown) => log.warn(`reboot failed: ${x instanceof Error ? x.message : String(x)}`));
    return { outcome: 'failed', ...at, detail: `${e.check} failed: ${e.reason}; ${next}`, failure, elapsed: elapsed(), checks: checks.map((c) => c.name), rebooting };
  }
  {
    await using _lock = await lockConfig(opts.root, { wait: true, timeoutMs: 60_000 });
    const now = await readBootState(opts.root);
    const tip = await currentGeneration({ root: opts.root });
    if (now === undefined || tip.oid !== head.oid) {
      await dog?.close(true);
      return { outcome: 'skipped', ...at, detail: `generation ${tip.number} was committed during the window: generation ${head.number} stays unblessed`, elapsed: elapsed(), checks: checks.map((c) => c.name), rebooting: false };
    }
    const { trial: _t, ...rest } = now;
    await writeBootState(opts.root, { ...rest, good: { ...at, since: new Date().toISOString() } });
    await appendBootEvent(opts.root, { ...at, event: 'good', detail: `healthy for ${elapsed().toFixed(0)} s` });
  }
  await dog?.close(true);
  log.info(`generation ${head.number} is good`);
  return { outcome: 'good', ...at, detail: `generation ${head.number} is good: healthy for ${elapsed().toFixed(1)} s`, elapsed: elapsed(), checks: checks.map((c) => c.name), rebooting: false };
}

/** Updates the trial of `commit` under the config lock (creating it when the initrd did not count this boot). */
async function setTrial(root: string, commit: string, f: (t: Trial) => Trial, fresh: { generation: number; commit: string; tries: number }): Promise<Trial> {
  await using _lock = await lockConfig(root, { wait: true, timeoutMs: 60_000 });
  const state = await readBootState(root);
  if (state === undefined) throw new MosError({ code: 'CONFIG_CORRUPT', subject: 'boot-state.json', message: 'disappeared during the assessment' });
  const trial = f(trialOf(state, { generation: fresh.generation, commit }, fresh.tries));
  await writeBootState(root, { ...state, trial });
  return trial;
}

async function pollOnce(root: string, commit: string, cfg: AssessConfig, model: ReturnType<typeof cachedStatusModel>, signal?: AbortSignal): Promise<void> {
  if (cfg.units.length > 0) {
    const r = await exec(['systemctl', 'is-active', '--', ...cfg.units], { okCodes: [0, 1, 3, 4], timeoutMs: 30_000, ...(signal ? { signal } : {}) }).catch((e: unknown) => {
      throw new CheckFailed('units', e instanceof Error ? e.message : String(e));
    });
    const states = r.stdout.trim().split('\n');
    cfg.units.forEach((u, i) => {
      if (states[i] !== 'active') throw new CheckFailed(`unit ${u}`, `is ${states[i] ?? 'unknown'}, not active`);
    });
  }
  const s = await model();
  for (const t of s.targets) {
    if (t.service_type !== 'container') continue;
    const r = s.runtime.find((x) => x.name === t.name);
    if (r?.state !== 'RUNNING') throw new CheckFailed(`container ${t.name}`, `is ${r?.state ?? 'not known to LXC'}, not RUNNING`);
  }
  const t = (await readBootState(root))?.trial;
  if (t?.commit === commit && t.vote?.good === false) throw new CheckFailed('vote', `voted bad by ${t.vote.by}${t.vote.reason ? `: ${t.vote.reason}` : ''}`);
}

interface Check {
  readonly name: string;
  readonly path: string;
}

async function listChecks(dir: string, log: Logger): Promise<Check[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot list the health checks: ${(e as Error).message}` });
  }
  const out: Check[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    const path = join(dir, n);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    if ((st.mode & 0o111) === 0) {
      log.warn(`${path}: not executable: not a health check`);
      continue;
    }
    out.push({ name: `health.d/${n}`, path });
  }
  return out;
}

async function runChecks(checks: readonly Check[], timeoutSec: number, signal: AbortSignal | undefined, dog: Watchdog | undefined): Promise<void> {
  for (const c of checks) {
    await dog?.pet();
    const started = performance.now();
    const r = await exec([c.path], { okCodes: Array.from({ length: 256 }, (_, i) => i), timeoutMs: timeoutSec * 1000, ...(signal ? { signal } : {}) }).catch((e: unknown) => {
      throw new CheckFailed(c.name, e instanceof Error ? e.message : String(e));
    });
    if (r.code !== 0) {
      const last = (r.stderr.trim() || r.stdout.trim()).split('\n').pop() ?? '';
      const timedOut = performance.now() - started >= timeoutSec * 1000 - 50;
      throw new CheckFailed(c.name, `${timedOut ? `did not finish in ${timeoutSec} s` : `exited ${r.code}`}${last ? `: ${last.slice(0, 500)}` : ''}`);
    }
  }
}

interface Watchdog {
  pet(): Promise<void>;
  /** `disarm`: write the magic 'V' so the close stops the timer; else it keeps running. */
  close(disarm: boolean): Promise<void>;
}

async function openWatchdog(device: string, log: Logger): Promise<Watchdog | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(device, 'w');
  } catch (e) {
    log.warn(`${device}: cannot take over the watchdog (${(e as Error).message}); it resets the machine unless something else pets it`);
    return undefined;
  }
  return {
    pet: async () => {
      await fh.write('1').catch(() => {});
    },
    close: async (disarm) => {
      if (disarm) await fh.write('V').catch(() => {});
      await fh.close().catch(() => {});
    },
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, Math.max(0, ms));
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new MosError({ code: 'CANCELED', message: 'assessment interrupted' }));
    }, { once: true });
  });
}
