import type { Command } from 'commander';
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
    .action(
      action(async (ctx, o: { target: string }) => {
        const remote = ctx.globals.remote;
        const r = remote
          ? await remoteOperation<DeactivateResult>(ctx, remote, `/v1/targets/${encodeURIComponent(o.target)}/deactivate`, undefined)
          : await (await machine()).deactivate({ root: ctx.globals.root, target: o.target, log: ctx.log });
        return { result: r, text: `${r.target}: ${r.stopped ? 'stopped' : r.unmounted ? 'unmounted' : 'was not active'}` };
      }, { remote: true }),
    );
}
