import { Option, type Command } from 'commander';
import { wholeNumber } from '../shared/flags.js';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { remoteOperation } from './remote.js';
import { MosError } from '../../src/base/index.js';
import type { SystemGcResult } from '../../src/machine/index.js';

/** `mosctl gc [--dry-run]`. */
export function register(program: Command): void {
  program
    .command('gc')
    .description('remove store blobs that no generation in history references')
    .addOption(new Option('--dry-run', 'list what would be removed, change nothing').conflicts('force'))
    .option('--keep <n>', 'keep the images of the newest N generations (plus the current, the previous and pinned ones); default: all')
    .option('--force', 'collect even if a generation cannot be read (its images stay only if another generation uses them)', false)
    .action(
      action(async (ctx, f: { dryRun?: boolean; force: boolean; keep?: string }) => {
        const keep = f.keep === undefined ? {} : { keep: wholeNumber(f.keep, '--keep', 1, 1_000_000) };
        const remote = ctx.globals.remote;
        if (remote && f.force) throw new MosError({ code: 'USAGE', subject: '--force', message: 'is not available with --server (run it on the machine)' });
        const r = remote
          ? await remoteOperation<SystemGcResult>(ctx, remote, '/v1/gc', { dryRun: f.dryRun === true, ...keep })
          : await (await machine()).systemGc({ root: ctx.globals.root, dryRun: f.dryRun === true, force: f.force, ...keep, log: ctx.log });
        const verb = r.dryRun ? 'would remove' : 'removed';
        const lines = [`${verb} ${r.removed.length} blobs (${mib(r.bytesFreed)} MiB); kept ${r.retained} for ${r.roots.length} roots from ${r.generations} generations`];
        for (const x of r.removed) lines.push(`  ${x.digest} ${x.size}`);
        for (const tag of r.untagged) lines.push(`  untag ${tag}`);
        if (r.prunedGenerations.length) lines.push(`  generations ${r.prunedGenerations.join(', ')}: history kept, images ${r.dryRun ? 'would go' : 'gone'} (rollback to them needs a fresh update)`);
        if (r.skippedGenerations.length) lines.push(`  skipped unreadable generations: ${r.skippedGenerations.join(', ')}`);
        return { result: r, text: lines.join('\n') };
      }, { remote: true }),
    );
}
