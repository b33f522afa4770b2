import type { Command } from 'commander';
import type { BootResult } from '../../src/machine/index.js';
import { capathOf, capathOption } from '../shared/flags.js';
import { table } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl boot`. */
export function register(program: Command): void {
  capathOption(program.command('boot'))
    .description('verify the system, set up storage and activate every target')
    .option('--require-verity', 'refuse layers without a verity root hash', false)
    .option('--systemd', 'also write systemd units for container targets', false)
    .option('--dry-run', 'verify and say which volumes would be made or emptied and what each target would do; change nothing', false)
    .action(
      action(async (ctx, o: { capath?: string; requireVerity: boolean; systemd: boolean; dryRun: boolean }) => {
        const r = await (await machine()).boot({ root: ctx.globals.root, ...capathOf(o), requireVerity: o.requireVerity, systemd: o.systemd, dryRun: o.dryRun, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: bootText(r), ...(r.failed > 0 ? { failure: 'SYSTEM_TARGETS_FAILED' as const } : {}) };
      }),
    );
}

function bootText(r: BootResult): string {
  const rows = r.targets.map((t) => (t.ok ? [t.target, 'ok', `${r.dryRun ? `would be ${t.action}` : t.action}${t.state && !r.dryRun ? ` ${t.state}` : ''}`] : [t.target, 'FAILED', `${t.error.code}: ${t.error.message}`]));
  const head = r.dryRun
    ? `generation ${r.generation} (dry run; nothing changed): ${r.targets.length - r.failed} of ${r.targets.length} targets would start`
    : `generation ${r.generation}: ${r.targets.length - r.failed} of ${r.targets.length} targets active`;
  const volumes = r.dryRun ? r.volumes.filter((v) => v.created || v.wiped).map((v) => `volume ${v.label}: would be ${v.wiped ? 'emptied' : 'created'} at ${v.path}`) : [];
  return [head, ...volumes, table(['TARGET', 'RESULT', 'DETAIL'], rows)].join('\n');
}
