import type { Command } from 'commander';
import { noRemoteDryRun } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { remoteOperation } from './remote.js';
import type { DeactivateResult } from '../../src/machine/index.js';

/** `mosctl deactivate -t T`. */
export function register(program: Command): void {
  program
    .command('deactivate')
    .description('stop a container target or unmount an fs-only target')
    .requiredOption('-t, --target <name>', 'target name')
    .option('--dry-run', 'say what would be stopped and unmounted; touch nothing', false)
    .action(
      action(async (ctx, o: { target: string; dryRun: boolean }) => {
        const remote = ctx.globals.remote;
        if (remote && o.dryRun) throw noRemoteDryRun('deactivate');
        if (o.dryRun) {
          const d = await (await machine()).deactivate({ root: ctx.globals.root, target: o.target, dryRun: true, log: ctx.log });
          const what = [d.stopped ? 'stop the container' : '', d.unmounted ? 'unmount its root' : ''].filter(Boolean).join(' and ');
          return { result: d, text: `${d.target}: would ${what || 'do nothing (not active)'} (dry run; nothing changed)` };
        }
        const r = remote
          ? await remoteOperation<DeactivateResult>(ctx, remote, `/v1/targets/${encodeURIComponent(o.target)}/deactivate`, undefined)
          : await (await machine()).deactivate({ root: ctx.globals.root, target: o.target, log: ctx.log });
        return { result: r, text: `${r.target}: ${r.stopped ? 'stopped' : r.unmounted ? 'unmounted' : 'was not active'}` };
      }, { remote: true }),
    );
}
