import type { Command } from 'commander';
import type { PinResult } from '../../src/machine/index.js';
import { generationNumber, noRemoteDryRun } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { withClient } from './remote.js';

/** `mosctl pin N` and `mosctl unpin N`: generations whose images `gc --keep` keeps. */
export function register(program: Command): void {
  for (const verb of ['pin', 'unpin'] as const) {
    program
      .command(verb)
      .argument('<generation>', 'generation number')
      .description(verb === 'pin' ? 'pin a generation: gc --keep keeps its images (a known-good release to go back to)' : 'unpin a generation')
      .option('--dry-run', `say what ${verb} would leave pinned; write nothing`, false)
      .action(
        action(async (ctx, n: string, o: { dryRun: boolean }) => {
          const ref = generationNumber(n, 'generation');
          const remote = ctx.globals.remote;
          if (remote && o.dryRun) throw noRemoteDryRun(verb);
          if (o.dryRun) {
            const d = await (await machine()).setPin({ root: ctx.globals.root, ref, pinned: verb === 'pin', dryRun: true });
            return { result: d, text: `generation ${d.generation} (${d.commit.slice(0, 12)}) would be ${d.pinned ? 'pinned' : 'unpinned'}; pinned then: ${d.pins.join(', ') || 'none'} (dry run; nothing written)` };
          }
          const r = remote
            ? await withClient(remote, (c) => c.call<PinResult>('POST', `/v1/generations/${ref}/${verb}`))
            : await (await machine()).setPin({ root: ctx.globals.root, ref, pinned: verb === 'pin', log: ctx.log });
          return { result: r, text: `generation ${r.generation} (${r.commit.slice(0, 12)}) ${r.pinned ? 'pinned' : 'unpinned'}; pinned: ${r.pins.join(', ') || 'none'}` };
        }, { remote: true }),
      );
  }
}
