import type { Command } from 'commander';
import type { CreateBootFsResult } from '../../src/machine/index.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { mountCommon, mountOptions, mountText, type MountFlags } from './mount.js';

/** `mosctl create-boot-fs [--dest D] [--watchdog DEV] [--no-assess]`: hostfs for the initrd to switch_root into. */
export function register(program: Command): void {
  mountOptions(
    program
      .command('create-boot-fs')
      .description('mount hostfs for the initrd to switch_root into (counting a try of a trial generation first, falling back when none is left)')
      .option('--dest <dir>', 'mount point', '/sysroot')
      .option('--watchdog <device>', 'arm this watchdog for a trial boot (mosctl assess pets and disarms it)')
      .option('--no-assess', 'boot the current generation as it is: no try counted, no fallback'),
  ).action(
    action(async (ctx, o: MountFlags & { watchdog?: string; assess: boolean }) => {
      const result = await (await machine()).createBootFs({ ...mountCommon(ctx, o), assess: o.assess, ...(o.watchdog !== undefined ? { watchdog: o.watchdog } : {}) });
      return { result, text: bootFsText(result) };
    }),
  );
}

/** The mount line first (the initrd prints it), then what boot assessment decided. */
function bootFsText(r: CreateBootFsResult): string {
  const out = [mountText(r)];
  const b = r.boot;
  if (b?.fallback) out.push(`generation ${b.fallback.from} failed (${b.fallback.reason}): fell back to generation ${b.fallback.to} as generation ${b.generation}`);
  if (b?.try) out.push(`generation ${b.generation} on trial: try ${b.try.n} of ${b.try.of}`);
  if (b?.note && !b.fallback) out.push(`generation ${b.generation}: ${b.note}`);
  if (r.watchdog) out.push(`watchdog ${r.watchdog.device} armed${r.watchdog.timeout !== undefined ? ` (${r.watchdog.timeout} s)` : ''} until mosctl assess takes it`);
  return out.join('\n');
}
