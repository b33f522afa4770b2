import type { Command } from 'commander';
import { resolve } from 'node:path';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl umount --dest D`. */
export function register(program: Command): void {
  program
    .command('umount')
    .description('unmount a root mounted by mount or create-boot-fs, releasing its layers and writable dirs')
    .option('--dest <dir>', 'mount point')
    .option('-t, --target <name>', 'the target mounted by mount -t at its default place (<root>/mnt/mos/<target>)')
    .option('--dry-run', 'say whether something is mounted there to unmount; change nothing', false)
    .action(
      action(async (ctx, o: { dest?: string; target?: string; dryRun: boolean }) => {
        const where = { ...(o.dest !== undefined ? { dest: resolve(o.dest) } : {}), ...(o.target !== undefined ? { target: o.target } : {}) };
        const result = await (await machine()).umountTarget({ root: ctx.globals.root, ...where, dryRun: o.dryRun, log: ctx.log });
        if (o.dryRun) return { result, text: result.unmounted ? `would unmount ${result.dest} (dry run; nothing changed)` : `nothing mounted at ${result.dest}` };
        return { result, text: result.unmounted ? `unmounted ${result.dest}` : `nothing mounted at ${result.dest}` };
      }),
    );
}
