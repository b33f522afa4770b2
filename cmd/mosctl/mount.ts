import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { MountTargetResult } from '../../src/machine/index.js';
import { capathOf, capathOption, registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { action, type CommandContext } from '../shared/run.js';
import { machine } from './load.js';

/** Flags of mount and create-boot-fs. */
export interface MountFlags {
  readonly target?: string;
  readonly readonly?: boolean;
  readonly dest?: string;
  readonly requireVerity?: boolean;
  readonly capath?: string;
  readonly dryRun?: boolean;
}

/** Adds the flags mount and create-boot-fs share. */
export function mountOptions(cmd: Command): Command {
  return capathOption(cmd)
    .option('--readonly', 'mount read-only (default: writable, writes discarded at unmount)')
    .option('--require-verity', 'refuse layers without a verity root hash')
    .option('--dry-run', 'print the mount steps, mount nothing');
}

/** The library options of those flags. */
export function mountCommon(ctx: CommandContext, o: MountFlags) {
  return {
    root: ctx.globals.root,
    log: ctx.log,
    onProgress: ctx.onProgress, signal: ctx.signal,
    readonly: o.readonly === true,
    requireVerity: o.requireVerity === true,
    dryRun: o.dryRun === true,
    ...(o.dest !== undefined ? { dest: resolve(o.dest) } : {}),
    ...capathOf(o),
  };
}

/** What a person reads after mount or create-boot-fs. */
export function mountText(r: MountTargetResult): string {
  if (r.dryRun) return r.steps.join('\n');
  if (r.alreadyMounted) return `${r.target} is already mounted at ${r.dest}`;
  const via = new Map<string, number>();
  for (const l of r.layers) via.set(l.via, (via.get(l.via) ?? 0) + 1);
  const how = [...via].map(([k, n]) => `through ${k}: ${n}`).join(', ');
  return `mounted ${r.target} (${r.digest})${r.generation !== undefined ? ` of generation ${r.generation}` : ''} ${r.writable ? 'writable' : 'read-only'} at ${r.dest}${how ? ` (layers ${how})` : ''}`;
}

/** `mosctl mount [--target T] [SOURCE]`. */
export function register(program: Command): void {
  registryOptions(mountOptions(
    program
      .command('mount')
      .description("mount a target's filesystem from its verified layers: an installed target, or (live CD) one from a signed install manifest SOURCE")
      .argument('[source]', 'install manifest reference, on a machine with nothing installed (host/name:tag or oci:DIR:TAG)')
      .option('-t, --target <name>', 'target to mount (default: hostfs; with SOURCE: livecd, else hostfs)')
      .option('--dest <dir>', 'mount point (default <root>/mnt/mos/<target>)'),
  )).action(
    action(async (ctx, source: string | undefined, o: MountFlags & RegistryFlags) => {
      const m = await machine();
      const target = o.target !== undefined ? { target: o.target } : {};
      const result =
        source === undefined
          ? await m.mountTarget({ ...mountCommon(ctx, o), ...target })
          : await m.mountRemote({
              ...mountCommon(ctx, o),
              ...target,
              source,
              ...registryAccess(o),
            });
      return { result, text: mountText(result) };
    }),
  );
}
