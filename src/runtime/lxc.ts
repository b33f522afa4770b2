import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { ensureDir, exec, exists, writeFileAtomic } from '../host/index.js';
import { checkBridges } from './network.js';
import { checkContainerName } from './validate.js';
import type { ContainerStateName, ContainerStatus } from './types.js';

/** Where a container lives: `<lxcPath>/<name>/config` (mosctl: `<root>/var/lib/lxc`). */
export interface ContainerRef {
  readonly name: string;
  readonly lxcPath: string;
}

export interface StartOptions extends ContainerRef {
  /** The rendered config (`renderLxcConfig`). */
  readonly config: string;
  readonly log?: Logger;
  /** Bound on lxc-execute reaching RUNNING; default 30 s. */
  readonly timeoutMs?: number;
}

export interface StopOptions extends ContainerRef {
  /** Seconds lxc-stop waits for a clean shutdown before the container is killed; default 10. */
  readonly timeoutS?: number;
  readonly log?: Logger;
}

const STATES = new Set(['RUNNING', 'STOPPED', 'STARTING', 'STOPPING', 'ABORTING', 'FREEZING', 'FROZEN', 'THAWED']);

/**
 * Writes `<lxcPath>/<name>/config` atomically and starts the container detached (`lxc-execute -d`:
 * lxc-init as PID 1 runs the configured command), then checks it is RUNNING. Bridges named by
 * `lxc.net.N.link` are checked first: a missing one is RUNTIME_NETWORK and nothing is written or started.
 * Refuses (ALREADY_EXISTS) a container that is already running. Needs root.
 */
export async function startContainer(opts: StartOptions): Promise<ContainerStatus> {
  const { name, lxcPath, config } = opts;
  const log = opts.log ?? silentLogger;
  checkContainerName(name);
  await checkBridges(configValues(config, /^lxc\.net\.\d+\.link$/), `container ${name}`);
  const before = await containerState({ name, lxcPath });
  if (before.state !== 'ABSENT' && before.state !== 'STOPPED') {
    throw new MosError({ code: 'ALREADY_EXISTS', subject: `container ${name}`, message: `is ${before.state}`, hint: 'stop it first (deactivate)' });
  }
  await checkRootfsReachable(config, name);
  const dir = join(lxcPath, name);
  await ensureDir(dir, 0o755);
  await writeFileAtomic(join(dir, 'config'), config, { mode: 0o644 });
  const logFile = configValues(config, /^lxc\.log\.file$/)[0];
  if (logFile) await ensureDir(dirname(logFile));
  log.debug('starting container', { name, lxcPath });
  try {
    // -d: lxc-execute waits until the container reports RUNNING (or fails) and then returns.
    await exec(['lxc-execute', '-d', '-n', name, '-P', lxcPath], { timeoutMs: opts.timeoutMs ?? 30_000 });
  } catch (e) {
    throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${name}`, message: `lxc-execute failed${await logTail(logFile)}`, hint: logFile ? `see ${logFile}` : undefined, cause: e });
  }
  const after = await containerState({ name, lxcPath });
  if (after.state !== 'RUNNING') {
    throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${name}`, message: `is ${after.state} right after start (did the command exit?)${await logTail(logFile)}`, hint: logFile ? `see ${logFile}` : undefined });
  }
  log.info('container running', { name, pid: after.pid });
  return after;
}

/** The container's state and init pid (`lxc-info`); ABSENT when `<lxcPath>/<name>/config` does not exist. */
export async function containerState(ref: ContainerRef): Promise<ContainerStatus> {
  checkContainerName(ref.name);
  if (!(await exists(join(ref.lxcPath, ref.name, 'config')))) return { name: ref.name, state: 'ABSENT' };
  let stdout: string;
  try {
    ({ stdout } = await exec(['lxc-info', '-n', ref.name, '-P', ref.lxcPath, '-s', '-p'], { timeoutMs: 30_000 }));
  } catch (e) {
    throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${ref.name}`, message: 'lxc-info failed', cause: e });
  }
  return parseLxcInfo(ref.name, stdout);
}

/** Parses `lxc-info -s -p` output (`State: RUNNING`, `PID: 123`) (pure). */
export function parseLxcInfo(name: string, stdout: string): ContainerStatus {
  const state = /^State:\s*(\S+)/m.exec(stdout)?.[1];
  const pid = /^PID:\s*(\d+)/m.exec(stdout)?.[1];
  if (state === undefined || !STATES.has(state)) {
    throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${name}`, message: `unexpected lxc-info output: ${stdout.slice(0, 200)}` });
  }
  return pid === undefined ? { name, state: state as ContainerStateName } : { name, state: state as ContainerStateName, pid: Number(pid) };
}

/**
 * Stops the container: lxc-stop (lxc-init passes SIGTERM to the command), after `timeoutS` a kill, then
 * removes the empty cgroup dirs LXC leaves. Idempotent: an absent or stopped container is fine.
 */
export async function stopContainer(opts: StopOptions): Promise<{ readonly wasRunning: boolean }> {
  const { name, lxcPath } = opts;
  const st = await containerState({ name, lxcPath });
  let wasRunning = false;
  if (st.state !== 'ABSENT' && st.state !== 'STOPPED') {
    wasRunning = true;
    const t = String(opts.timeoutS ?? 10);
    // exit 2: "not running" (it stopped meanwhile) is success here
    await exec(['lxc-stop', '-n', name, '-P', lxcPath, '-t', t], { okCodes: [0, 1, 2], timeoutMs: ((opts.timeoutS ?? 10) + 30) * 1000 });
    if ((await containerState({ name, lxcPath })).state !== 'STOPPED') {
      opts.log?.warn('container did not stop in time; killing it', { name });
      await exec(['lxc-stop', '-n', name, '-P', lxcPath, '-k'], { okCodes: [0, 2], timeoutMs: 30_000 });
    }
    const end = await containerState({ name, lxcPath });
    if (end.state !== 'STOPPED') throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${name}`, message: `still ${end.state} after lxc-stop -k` });
  }
  await cleanupCgroups(name);
  return { wasRunning };
}

/** Stops the container and removes its config and directory (never anything else: the rootfs lives elsewhere). */
export async function removeContainer(opts: StopOptions): Promise<void> {
  await stopContainer(opts);
  const dir = join(opts.lxcPath, opts.name);
  await rm(join(dir, 'config'), { force: true });
  await rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot remove: ${e.message}`, cause: e });
  });
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * Removes the cgroup dirs LXC leaves behind for `name` (`lxc.payload.<name>`, `lxc.monitor.<name>`) and
 * an empty `lxc.pivot`, in every mounted hierarchy (v1 controllers and v2). rmdir only: a cgroup that
 * still has tasks (another container's pivot) stays.
 */
export async function cleanupCgroups(name: string): Promise<void> {
  checkContainerName(name);
  const hierarchies = [CGROUP_ROOT, ...(await subdirs(CGROUP_ROOT)).map((d) => join(CGROUP_ROOT, d))];
  for (const h of hierarchies) {
    for (const leaf of [`lxc.payload.${name}`, `lxc.monitor.${name}`, 'lxc.pivot']) await rmdirTree(join(h, leaf));
  }
}

async function subdirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory()).map((d) => d.name);
}

async function rmdirTree(dir: string): Promise<void> {
  for (const d of await subdirs(dir)) await rmdirTree(join(dir, d));
  await rmdir(dir).catch(() => {}); // busy or absent: leave it
}

/** Values of config lines whose key matches `key` (pure). */
export function configValues(config: string, key: RegExp): string[] {
  const out: string[] = [];
  for (const line of config.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0 || line.trimStart().startsWith('#')) continue;
    if (key.test(line.slice(0, eq).trim())) out.push(line.slice(eq + 1).trim());
  }
  return out;
}

// With an idmap the container's root is an unprivileged host uid: every directory above the rootfs
// must be searchable by "others", or LXC fails with an opaque "error in another process".
async function checkRootfsReachable(config: string, name: string): Promise<void> {
  const rootfs = configValues(config, /^lxc\.rootfs\.path$/)[0]?.replace(/^dir:/, '');
  if (!rootfs || configValues(config, /^lxc\.idmap$/).length === 0) return;
  for (let d = dirname(rootfs); ; d = dirname(d)) {
    const st = await stat(d).catch(() => undefined);
    if (st && (st.mode & 0o001) === 0) {
      throw new MosError({ code: 'RUNTIME_LXC_FAILED', subject: `container ${name}`, message: `${d} is not searchable by others, so the idmapped container root cannot reach its rootfs`, hint: `chmod o+x ${d}` });
    }
    if (d === dirname(d)) return;
  }
}

async function logTail(logFile: string | undefined): Promise<string> {
  if (!logFile) return '';
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const errs = text.split('\n').filter((l) => /\b(ERROR|CRIT|ALERT|FATAL)\b/.test(l));
  return errs.length > 0 ? `: ${errs.slice(-3).join(' | ').slice(-800)}` : '';
}
