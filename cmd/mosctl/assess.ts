import type { Command } from 'commander';
import type { AssessResult, BootStatus } from '../../src/machine/index.js';
import { collect, seconds, wholeNumber } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { bootText } from './status.js';


/** `mosctl assess`, `mosctl mark-good`, `mosctl mark-bad`: boot assessment of the current generation. */
export function register(program: Command): void {
  program
    .command('assess')
    .description('assess the booted trial generation: good after a healthy window, else record why and reboot (mos-assess.service)')
    .option('--window <seconds>', 'how long it must stay healthy (default 300, or window: in /etc/mosctl/assess.yaml)')
    .option('--interval <seconds>', 'seconds between polls (default 5)')
    .option('--unit <name>', 'a systemd unit or target that must be active (repeatable; default multi-user.target and mos-boot-setup.service)', collect)
    .option('--no-units', 'require no systemd unit (a host without systemd)')
    .option('--checks <dir>', 'health checks to run (default <root>/etc/mosctl/health.d)')
    .option('--check-timeout <seconds>', 'seconds one health check may take (default 60)')
    .option('--vote', 'also wait for a workload to vote the generation good through the upgrade API')
    .option('--tries <n>', 'tries later generations get (default 2)')
    .option('--no-reboot', 'on a failed check record it, but do not reboot')
    .action(
      action(async (ctx, o: { window?: string; interval?: string; unit?: string[]; units: boolean; checks?: string; checkTimeout?: string; vote?: boolean; tries?: string; reboot: boolean }) => {
        const r: AssessResult = await (await machine()).assess({
          root: ctx.globals.root,
          log: ctx.log,
          reboot: o.reboot,
          ...(o.window !== undefined ? { window: seconds(o.window, '--window', 0, 86_400) } : {}),
          ...(o.interval !== undefined ? { interval: seconds(o.interval, '--interval', 0.1, 3600) } : {}),
          ...(o.units === false ? { units: [] } : o.unit !== undefined ? { units: o.unit } : {}),
          ...(o.checks !== undefined ? { checksDir: o.checks } : {}),
          ...(o.checkTimeout !== undefined ? { checkTimeout: seconds(o.checkTimeout, '--check-timeout', 1, 3600) } : {}),
          ...(o.vote ? { vote: true } : {}),
          ...(o.tries !== undefined ? { tries: wholeNumber(o.tries, '--tries', 1, 10) } : {}),
          signal: ctx.signal,
          onTick: (elapsed, window) => ctx.onProgress({ kind: 'step', step: 'assess', detail: `${elapsed.toFixed(0)} of ${window} s healthy` }),
        });
        return { result: r, text: r.detail, ...(r.outcome === 'failed' ? { failure: 'SYSTEM_UNHEALTHY' as const } : {}) };
      }),
    );
  program
    .command('mark-good')
    .description('bless the current generation now: it becomes the one a failed boot falls back to')
    .option('--dry-run', 'say what would be blessed; write nothing', false)
    .action(
      action(async (ctx, o: { dryRun: boolean }) => {
        const r: BootStatus = await (await machine()).markGood(ctx.globals.root, { by: 'mosctl mark-good', dryRun: o.dryRun });
        if (o.dryRun) return { result: { ...r, dryRun: true }, text: `generation ${r.generation} would be marked good (dry run; nothing written)\n${bootText(r)}` };
        return { result: r, text: `generation ${r.generation} is good\n${bootText(r)}` };
      }),
    );
  program
    .command('mark-bad')
    .description('give the current trial generation no more tries: the next boot falls back to the good one')
    .option('--reason <text>', 'why (recorded with the failure)')
    .option('--reboot', 'reboot now (systemctl reboot)', false)
    .option('--dry-run', 'check it could be marked bad and say where the next boot would go; write nothing, no reboot', false)
    .action(
      action(async (ctx, o: { reason?: string; reboot: boolean; dryRun: boolean }) => {
        const m = await machine();
        if (o.dryRun) {
          const d: BootStatus = await m.markBad(ctx.globals.root, { dryRun: true });
          return { result: { ...d, dryRun: true }, text: `generation ${d.generation} would be marked bad: the next boot would fall back to generation ${d.good?.generation ?? '?'} (dry run; nothing written)` };
        }
        const r: BootStatus = await m.markBad(ctx.globals.root, { by: 'mosctl mark-bad', ...(o.reason !== undefined ? { reason: o.reason.slice(0, 500) } : {}) });
        if (o.reboot) await m.rebootHost();
        return { result: r, text: `generation ${r.generation} is marked bad: the next boot falls back to generation ${r.good?.generation ?? '?'}${o.reboot ? ' (rebooting)' : ''}\n${bootText(r)}` };
      }),
    );
}
