import { MosError, type Logger } from '../base/index.js';
import { commitGeneration, currentGeneration, lockConfig, readGeneration } from '../config/index.js';
import { openStore, hasImage, targetDescriptor } from './store.js';
import { loadSystem } from './load-system.js';
import { recordNewGeneration } from './assessment.js';
import { readBootState } from './boot-state.js';
import { installVerifier, loadAnchors } from './trust-policy.js';

export interface RollbackOptions {
  readonly root: string;
  /** Generation to make current again; default the one before the current. */
  readonly to?: number;
  readonly capath?: string;
  readonly wait?: boolean;
  /** Check that the generation verifies and its images are all in the store; commit nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
}

export interface RollbackResult {
  readonly from: number;
  readonly to: number;
  readonly generation: number;
  readonly commit: string;
  readonly dryRun: boolean;
}

/**
 * `mosctl rollback`: make an earlier generation current again as a NEW commit (history only grows). The
 * earlier generation is verified against today's CA and its images must still be in the store.
 */
export async function rollback(opts: RollbackOptions): Promise<RollbackResult> {
  await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  await using _lock = await lockConfig(opts.root, { wait: opts.wait ?? false, ...(opts.log ? { log: opts.log } : {}) });
  const head = await currentGeneration({ root: opts.root }); // HEAD only: `to` is found walking down from it
  const to = opts.to ?? head.number - 1;
  if (!Number.isInteger(to) || to < 1 || to > head.number) {
    throw new MosError({
      code: 'CONFIG_GENERATION_UNKNOWN',
      subject: `generation ${to}`,
      message: to < 1 && opts.to === undefined ? 'there is no earlier generation to roll back to' : `no such generation (1-${head.number})`,
      hint: 'see mosctl history',
    });
  }
  if (to === head.number) throw new MosError({ code: 'INPUT_INVALID', subject: `generation ${to}`, message: 'is already current' });
  const anchors = await loadAnchors(opts.root, opts.capath);
  const gen = await readGeneration({ root: opts.root, ref: to });
  const sys = await loadSystem(gen, { verify: installVerifier(anchors, opts.now ?? new Date()) });
  const store = await openStore(opts.root, opts.log);
  for (const t of sys.targets) {
    if (!(await hasImage(store, targetDescriptor(t.target)))) {
      throw new MosError({
        code: 'OCI_MANIFEST_UNKNOWN',
        subject: `generation ${to}: target ${t.target.service_name}`,
        message: `its image ${t.target.digest} is no longer in the store`,
        hint: 'update to that release again from its registry instead',
      });
    }
  }
  if (opts.dryRun) return { from: head.number, to, generation: head.number, commit: head.oid, dryRun: true };
  await readBootState(opts.root); // a damaged boot-assessment record refuses the rollback before it commits
  const { oid, number } = await commitGeneration({ root: opts.root, files: gen.files, message: `Rollback to generation ${to}`, ...(opts.now ? { now: opts.now } : {}), parent: head.oid, ...(opts.log ? { log: opts.log } : {}) });
  await recordNewGeneration(opts.root, { generation: number, commit: oid }, { generation: head.number, commit: head.oid }, opts.now ? { now: opts.now } : {});
  return { from: head.number, to, generation: number, commit: oid, dryRun: false };
}
