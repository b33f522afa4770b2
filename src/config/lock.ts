import type { Logger } from '../base/index.js';
import { acquireLock, ensureDir, type FileLock } from '../host/index.js';
import { configPaths } from './paths.js';

/** Options of lockConfig. */
export interface LockConfigOptions {
  /** Wait for a busy lock instead of failing at once with CONFIG_LOCKED (`locked by pid N (cmdline)`). */
  readonly wait?: boolean;
  /** With `wait`, give up after this many ms (default: wait forever). */
  readonly timeoutMs?: number;
  /** With `wait`: says whom it waits for. */
  readonly log?: Logger;
}

/**
 * Takes the exclusive writer lock `<root>/config/manifest.lock` (the flock Go mos takes too), creating
 * `config/` if needed. Every writer of the config store holds it; readers need not (they read commits).
 * Released by `release()`, `await using`, or the process ending (even by SIGKILL).
 */
export async function lockConfig(root: string, opts: LockConfigOptions = {}): Promise<FileLock> {
  const { configDir, lockPath } = configPaths(root);
  await ensureDir(configDir, 0o755);
  return acquireLock(lockPath, {
    ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
}
