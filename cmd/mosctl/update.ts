import type { Command } from 'commander';
import type { UpdateResult } from '../../src/machine/index.js';
import { table } from '../shared/format.js';
import { action } from '../shared/run.js';
import { sourceAccess, sourceOptions, type SourceFlags } from './install.js';
import { machine } from './load.js';

/** `mosctl update SOURCE`. */
export function register(program: Command): void {
  sourceOptions(program.command('update').argument('<source>', 'install manifest reference'))
    .description('verify and apply an update (partial: named targets; complete: all), as a new generation')
    .option('--allow-downgrade', 'accept an older version of a target', false)
    .option('--dry-run', 'show what would change; write nothing', false)
    .action(
      action(async (ctx, source: string, o: SourceFlags & { allowDowngrade: boolean; dryRun: boolean }) => {
        const r = await (await machine()).update({ root: ctx.globals.root, source, ...sourceAccess(o), allowDowngrade: o.allowDowngrade, dryRun: o.dryRun, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: updateText(r) };
      }),
    );
}

function updateText(r: UpdateResult): string {
  if (r.noop) return `already up to date (generation ${r.generation})`;
  const rows = [
    ...r.added.map((n) => ['added', n, '']),
    ...r.changed.map((c) => ['changed', c.name, `${c.from} -> ${c.to}`]),
    ...r.removed.map((n) => ['removed', n, '']),
  ];
  const head = r.dryRun ? `would update (dry run; nothing written):` : `updated to generation ${r.generation} (${r.commit.slice(0, 12)}); fetched ${r.blobBytes} blob bytes`;
  return [head, table(['CHANGE', 'TARGET', 'VERSION'], rows)].join('\n');
}
