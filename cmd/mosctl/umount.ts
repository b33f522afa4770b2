import type { Command } from 'commander';
import { resolve } from 'node:path';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl umount --dest D`. */
export function register(program: Command): void {
  program
    .command('umount')
    .description('unmount a root mounted by mount or create-boot-fs, releasing its layers and writable dirs')
    .requiredOption('--dest <dir>', 'mount point')
    .action(
      action(async (ctx, o: { dest: string }) => {
        const result = await (await machine()).umountTarget({ root: ctx.globals.root, dest: resolve(o.dest), log: ctx.log });
        return { result, text: result.unmounted ? `unmounted ${result.dest}` : `nothing mounted at ${result.dest}` };
      }),
    );
}
