import type { Command } from 'commander';
import { capathOf, capathOption } from '../shared/flags.js';
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
    .action(
      action(async (ctx, o: { target: string; capath?: string; requireVerity: boolean; systemd: boolean }) => {
        const remote = ctx.globals.remote;
        const r = remote
          ? await remoteOperation<ActivateResult>(ctx, remote, `/v1/targets/${encodeURIComponent(o.target)}/activate`, undefined)
          : await (await machine()).activate({ root: ctx.globals.root, target: o.target, ...capathOf(o), requireVerity: o.requireVerity, systemd: o.systemd, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: `${r.target}: ${r.action}${r.state ? ` (${r.state})` : ''} at ${r.path}` };
      }, { remote: true }),
    );
}
