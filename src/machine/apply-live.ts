import { isMosError, silentLogger, type Logger } from '../base/index.js';
import { activate, deactivate } from './activate.js';
import { status } from './status.js';
import { withRuntime, type TargetRuntime } from './runtime-view.js';

/** What bringing the running targets to the current generation did. */
export interface ApplyLiveResult {
  /** Targets started again on their new image (they were running or mounted). */
  readonly restarted: readonly string[];
  /** Targets the generation no longer has, stopped or unmounted. */
  readonly stopped: readonly string[];
  /** Targets that failed to come up again, with the reason (the generation stays committed). */
  readonly failed: readonly { readonly name: string; readonly code: string; readonly message: string }[];
}

export interface ApplyLiveOptions {
  readonly root: string;
  /** What was live before the commit (from withRuntime on the old generation). */
  readonly before: readonly TargetRuntime[];
  readonly capath?: string;
  readonly log?: Logger;
}

const isLive = (r: TargetRuntime): boolean => r.mounted || r.state === 'RUNNING';

/**
 * After an update's commit, restarts the container and fs-only targets that were live on their new
 * image and stops the ones the new generation dropped; targets that were not live stay as they are
 * (boot starts them). hostfs is the booted root and changes only at the next boot.
 */
export async function applyLive(opts: ApplyLiveOptions): Promise<ApplyLiveResult> {
  const log = opts.log ?? silentLogger;
  const now = await status({ root: opts.root });
  const live = opts.before.filter(isLive).map((r) => r.name);
  const current = new Map(now.targets.map((t) => [t.name, t]));
  const restarted: string[] = [];
  const stopped: string[] = [];
  const failed: { name: string; code: string; message: string }[] = [];
  for (const name of live) {
    const t = current.get(name);
    try {
      if (!t) {
        await deactivate({ root: opts.root, target: name, log });
        stopped.push(name);
      } else if (t.service_type !== 'hostfs') {
        const r = await activate({ root: opts.root, target: name, ...(opts.capath ? { capath: opts.capath } : {}), log });
        if (r.action === 'restarted') restarted.push(name);
      }
    } catch (e) {
      if (!isMosError(e)) throw e;
      log.warn(`target ${name} did not come up on the new generation`, { code: e.code, error: e.message });
      failed.push({ name, code: e.code, message: e.message });
    }
  }
  return { restarted, stopped, failed };
}

/** The live view of the current generation, for applyLive's `before`. */
export async function liveTargets(root: string): Promise<readonly TargetRuntime[]> {
  return (await withRuntime(root, await status({ root }))).runtime;
}
