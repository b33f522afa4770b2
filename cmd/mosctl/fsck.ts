import type { Command } from 'commander';
import { capathOf, capathOption } from '../shared/flags.js';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl fsck`. */
export function register(program: Command): void {
  capathOption(program.command('fsck'))
    .description("verify every blob of the image store (<root>/atomfs-store/mos), that every current target is present, and every generation's signatures")
    .option('--clean', 'remove temp files left by crashed writers', false)
    .option('--skip-signatures', 'check the image store only, not the signatures of the config', false)
    .action(
      action(async (ctx, f: { clean: boolean; capath?: string; skipSignatures: boolean }) => {
        const r = await (await machine()).systemFsck({ root: ctx.globals.root, clean: f.clean, skipSignatures: f.skipSignatures, ...capathOf(f), log: ctx.log });
        const lines = [`${r.store}: ${r.blobs} blobs, ${mib(r.bytes)} MiB, ${r.ok ? 'ok' : 'PROBLEMS'}`];
        if (r.installed && !f.skipSignatures) lines.push(`config: ${r.signaturesVerified} generation${r.signaturesVerified === 1 ? '' : 's'} with verified signatures`);
        for (const p of r.problems) lines.push(`  ${p}`);
        if (r.dangling.length) lines.push(`  ${r.dangling.length} unreferenced blobs (mosctl gc removes them)`);
        if (r.strays.length) lines.push(`  ${r.strays.length} temp files of interrupted writes${f.clean ? ' (removed those of dead writers)' : ' (--clean removes them)'}`);
        return { result: r, text: lines.join('\n'), ...(r.ok ? {} : { failure: 'SYSTEM_INTEGRITY' as const }) };
      }),
    );
}
