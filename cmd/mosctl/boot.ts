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
    .action(
      action(async (ctx, o: { capath?: string; requireVerity: boolean; systemd: boolean }) => {
        const r = await (await machine()).boot({ root: ctx.globals.root, ...capathOf(o), requireVerity: o.requireVerity, systemd: o.systemd, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: bootText(r), ...(r.failed > 0 ? { failure: 'SYSTEM_TARGETS_FAILED' as const } : {}) };
      }),
    );
}

function bootText(r: BootResult): string {
  const rows = r.targets.map((t) => (t.ok ? [t.target, 'ok', `${t.action}${t.state ? ` ${t.state}` : ''}`] : [t.target, 'FAILED', `${t.error.code}: ${t.error.message}`]));
  return [`generation ${r.generation}: ${r.targets.length - r.failed} of ${r.targets.length} targets active`, table(['TARGET', 'RESULT', 'DETAIL'], rows)].join('\n');
}
