import { Option, type Command } from 'commander';
import type { OperationMode } from '../../src/machine/index.js';
import { table } from '../shared/format.js';
import { action } from '../shared/run.js';
import { sourceAccess, sourceOptions, type SourceFlags } from './install.js';
import { machine } from './load.js';
import { changeRows, updateText } from './update.js';

const modeOption = () =>
  new Option('--mode <mode>', 'download: fetch and verify only; stage: also commit the generation (next boot); apply: also restart live targets')
    .choices(['download', 'stage', 'apply'])
    .default('stage');

/** `mosctl upgrade [--check]` and `mosctl switch SOURCE`: follow a tracked source, as bootc does. */
export function register(program: Command): void {
  sourceOptions(program.command('upgrade'))
    .description('update from the tracked source (recorded by install, switch and complete updates)')
    .option('--check', 'only say whether an update exists and its download size (exit 100 if one does); write nothing', false)
    .option('--allow-downgrade', 'accept an older version of a target', false)
    .addOption(modeOption())
    .action(
      action(async (ctx, o: SourceFlags & { check: boolean; allowDowngrade: boolean; mode: OperationMode }) => {
        const r = await (await machine()).upgrade({ root: ctx.globals.root, ...sourceAccess(o), allowDowngrade: o.allowDowngrade, check: o.check, mode: o.mode, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
        if (!o.check) return { result: r, text: `${r.source}:\n${updateText(r)}` };
        if (!r.available) return { result: r, text: `up to date with ${r.source} (generation ${r.generation})` };
        const rows = changeRows(r);
        const text = [`update available: ${r.source} names manifest ${r.manifest.slice(0, 12)}; ${r.bytesToFetch} bytes to fetch${r.rebootRequired ? '; hostfs changes (reboot)' : ''}`, table(['CHANGE', 'TARGET', 'VERSION'], rows)].join('\n');
        return { result: r, text, failure: 'UPDATE_AVAILABLE' };
      }),
    );
  sourceOptions(program.command('switch').argument('<source>', 'install manifest reference to follow from now on'))
    .description('update from SOURCE and track it from now on (mosctl upgrade follows it)')
    .option('--allow-downgrade', 'accept an older version of a target', false)
    .option('--dry-run', 'show what would change; write nothing (the tracked source stays)', false)
    .addOption(modeOption())
    .action(
      action(async (ctx, source: string, o: SourceFlags & { allowDowngrade: boolean; dryRun: boolean; mode: OperationMode }) => {
        const r = await (await machine()).switchSource({ root: ctx.globals.root, source, ...sourceAccess(o), allowDowngrade: o.allowDowngrade, dryRun: o.dryRun, mode: o.mode, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
        return { result: r, text: `${o.dryRun ? '' : `now tracking ${source}\n`}${updateText({ ...r, dryRun: o.dryRun })}` };
      }),
    );
}
