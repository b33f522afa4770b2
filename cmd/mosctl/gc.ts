import { Option, type Command } from 'commander';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl gc [--dry-run]`. */
export function register(program: Command): void {
  program
    .command('gc')
    .description('remove store blobs that no generation in history references')
    .addOption(new Option('--dry-run', 'list what would be removed, change nothing').conflicts('force'))
    .option('--force', 'collect even if a generation cannot be read (its images stay only if another generation uses them)', false)
    .action(
      action(async (ctx, f: { dryRun?: boolean; force: boolean }) => {
        const r = await (await machine()).systemGc({ root: ctx.globals.root, dryRun: f.dryRun === true, force: f.force, log: ctx.log });
        const verb = r.dryRun ? 'would remove' : 'removed';
        const lines = [`${verb} ${r.removed.length} blobs (${mib(r.bytesFreed)} MiB); kept ${r.retained} for ${r.roots.length} roots from ${r.generations} generations`];
        for (const x of r.removed) lines.push(`  ${x.digest} ${x.size}`);
        for (const tag of r.untagged) lines.push(`  untag ${tag}`);
        if (r.skippedGenerations.length) lines.push(`  skipped unreadable generations: ${r.skippedGenerations.join(', ')}`);
        return { result: r, text: lines.join('\n') };
      }),
    );
}
