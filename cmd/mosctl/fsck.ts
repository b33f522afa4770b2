import type { Command } from 'commander';
import { capathOf, capathOption, registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl fsck`. */
export function register(program: Command): void {
  registryOptions(capathOption(program.command('fsck')))
    .description("verify every blob of the image store (<root>/atomfs-store/mos), that every current target is present, and every generation's signatures")
    .option('--clean', 'remove temp files left by crashed writers', false)
    .option('--skip-signatures', 'check the image store only, not the signatures of the config', false)
    .option('--repair', 'remove corrupt blobs and fetch again (verified) what the current generation misses, from where each manifest came', false)
    .option('--source <ref>', 'with --repair: fetch from this source instead (it must name the same install manifest)')
    .option('--dry-run', 'with --repair or --clean: say what would be removed and fetched (sources are still checked); change nothing', false)
    .action(
      action(async (ctx, f: RegistryFlags & { clean: boolean; capath?: string; skipSignatures: boolean; repair: boolean; source?: string; dryRun: boolean }) => {
        const m = await machine();
        const lines: string[] = [];
        let fixed: Awaited<ReturnType<typeof m.repairStore>> | undefined;
        if (f.repair) {
          fixed = await m.repairStore({ root: ctx.globals.root, ...capathOf(f), ...registryAccess(f), ...(f.source ? { source: f.source } : {}), dryRun: f.dryRun, log: ctx.log });
          for (const d of fixed.removedCorrupt) lines.push(`${f.dryRun ? 'would remove' : 'removed'} corrupt blob ${d}`);
          for (const x of fixed.repaired) lines.push(`${f.dryRun ? 'would repair' : 'repaired'} ${x.target} from ${x.source}`);
          for (const x of fixed.unrepaired) lines.push(`could not repair ${x.target}: ${x.reason}`);
          if (fixed.repaired.length) lines.push(`${f.dryRun ? 'would fetch' : 'fetched'} ${fixed.blobBytes} blob bytes${f.dryRun ? ' (dry run; nothing changed)' : ''}`);
        }
        const r = await m.systemFsck({ root: ctx.globals.root, clean: f.clean && !f.dryRun, skipSignatures: f.skipSignatures, ...capathOf(f), log: ctx.log });
        lines.push(`${r.store}: ${r.blobs} blobs, ${mib(r.bytes)} MiB, ${r.ok ? 'ok' : 'PROBLEMS'}`);
        if (r.installed && !f.skipSignatures) lines.push(`config: ${r.signaturesVerified} generation${r.signaturesVerified === 1 ? '' : 's'} with verified signatures`);
        for (const p of r.problems) lines.push(`  ${p}`);
        if (r.dangling.length) lines.push(`  ${r.dangling.length} unreferenced blobs (mosctl gc removes them)`);
        if (r.strays.length) lines.push(`  ${r.strays.length} temp files of interrupted writes${f.clean ? (f.dryRun ? ' (--clean would remove those of dead writers)' : ' (removed those of dead writers)') : ' (--clean removes them)'}`);
        // A dry run of a repair reports the damage it would mend as a finding still (exit 5).
        const ok = r.ok && (fixed?.unrepaired.length ?? 0) === 0;
        return { result: fixed ? { ...r, repair: fixed } : r, text: lines.join('\n'), ...(ok ? {} : { failure: 'SYSTEM_INTEGRITY' as const }) };
      }),
    );
}
