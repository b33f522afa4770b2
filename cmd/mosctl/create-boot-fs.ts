import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { mountCommon, mountOptions, mountText, type MountFlags } from './mount.js';

/** `mosctl create-boot-fs [--dest D]`: hostfs for the initrd to switch_root into. */
export function register(program: Command): void {
  mountOptions(
    program
      .command('create-boot-fs')
      .description('mount hostfs for the initrd to switch_root into')
      .option('--dest <dir>', 'mount point', '/sysroot'),
  ).action(
    action(async (ctx, o: MountFlags) => {
      const result = await (await machine()).createBootFs(mountCommon(ctx, o));
      return { result, text: mountText(result) };
    }),
  );
}
