import type { Command } from 'commander';
import { capathOf, capathOption, noRemoteDryRun } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { remoteOperation } from './remote.js';
import type { ActivateResult } from '../../src/machine/index.js';

/** `mosctl activate -t T`. */
export function register(program: Command): void {
  capathOption(program.command('activate'))
    .description('start a target, or restart it when its image changed (fs-only: mount; container: LXC)')
    .requiredOption('-t, --target <name>', 'target name')
    .option('--require-verity', 'refuse layers without a verity root hash', false)
    .option('--systemd', 'also write <root>/etc/systemd/system/<target>.service for a container', false)
    .option('--dry-run', 'verify and say what would happen (start, restart, nothing); write and mount nothing', false)
    .action(
      action(async (ctx, o: { target: string; capath?: string; requireVerity: boolean; systemd: boolean; dryRun: boolean }) => {
        const remote = ctx.globals.remote;
        if (remote && o.dryRun) throw noRemoteDryRun('activate');
        if (o.dryRun) {
          const d = await (await machine()).activate({ root: ctx.globals.root, target: o.target, ...capathOf(o), requireVerity: o.requireVerity, dryRun: true, log: ctx.log });
          const verb = d.action === 'started' ? 'start' : d.action === 'restarted' ? 'restart (its image changed)' : 'leave unchanged (already runs this image)';
          return { result: d, text: `${d.target}: would ${verb} at ${d.path} (dry run; nothing changed)` };
        }
        const r = remote
          ? await remoteOperation<ActivateResult>(ctx, remote, `/v1/targets/${encodeURIComponent(o.target)}/activate`, undefined)
          : await (await machine()).activate({ root: ctx.globals.root, target: o.target, ...capathOf(o), requireVerity: o.requireVerity, systemd: o.systemd, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: `${r.target}: ${r.action}${r.state ? ` (${r.state})` : ''} at ${r.path}` };
      }, { remote: true }),
    );
}
