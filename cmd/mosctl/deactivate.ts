import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl deactivate -t T`. */
export function register(program: Command): void {
  program
    .command('deactivate')
    .description('stop a container target or unmount an fs-only target')
    .requiredOption('-t, --target <name>', 'target name')
    .action(
      action(async (ctx, o: { target: string }) => {
        const r = await (await machine()).deactivate({ root: ctx.globals.root, target: o.target, log: ctx.log });
        return { result: r, text: `${r.target}: ${r.stopped ? 'stopped' : r.unmounted ? 'unmounted' : 'was not active'}` };
      }),
    );
}
