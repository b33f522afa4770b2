import type { Command } from 'commander';
import { capathOf, capathOption, generationNumber } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { remoteOperation } from './remote.js';
import { MosError } from '../../src/base/index.js';
import type { RollbackResult } from '../../src/machine/index.js';

/** `mosctl rollback [--to N]`. */
export function register(program: Command): void {
  capathOption(program.command('rollback'))
    .description('make an earlier generation current again (as a new generation)')
    .option('--to <n>', 'generation number (default: the one before the current)')
    .option('--wait', 'wait for a busy config lock', false)
    .option('--dry-run', 'check the generation verifies and its images are all here; commit nothing', false)
    .action(
      action(async (ctx, o: { to?: string; capath?: string; wait: boolean; dryRun: boolean }) => {
        const to = o.to === undefined ? {} : { to: generationNumber(o.to, '--to') };
        const remote = ctx.globals.remote;
        if (remote && o.dryRun) throw new MosError({ code: 'USAGE', subject: '--dry-run', message: 'is not available with --server for rollback' });
        const r = remote
          ? await remoteOperation<RollbackResult>(ctx, remote, '/v1/rollback', to)
          : await (await machine()).rollback({ root: ctx.globals.root, ...to, ...capathOf(o), wait: o.wait, dryRun: o.dryRun, log: ctx.log });
        if (r.dryRun) return { result: r, text: `would roll back to generation ${r.to}: it verifies and its images are all in the store (nothing committed)` };
        return { result: r, text: `rolled back to generation ${r.to}: now generation ${r.generation} (${r.commit.slice(0, 12)})` };
      }, { remote: true }),
    );
}
