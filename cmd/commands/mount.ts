import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { MountTargetResult } from '../../src/system/index.js';
import { collect } from '../format.js';
import { action, type CommandContext } from '../common.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const system = () => import('../../src/system/index.js');

interface MountFlags {
  target?: string;
  readonly?: boolean;
  dest?: string;
  requireVerity?: boolean;
  capath?: string;
  dryRun?: boolean;
}

function common(ctx: CommandContext, o: MountFlags) {
  return {
    root: ctx.globals.root,
    log: ctx.log,
    onProgress: ctx.onProgress,
    readonly: o.readonly === true,
    requireVerity: o.requireVerity === true,
    dryRun: o.dryRun === true,
    ...(o.dest !== undefined ? { dest: resolve(o.dest) } : {}),
    ...(o.capath !== undefined ? { capath: o.capath } : {}),
  };
}

function text(r: MountTargetResult): string {
  if (r.dryRun) return r.steps.join('\n');
  if (r.alreadyMounted) return `${r.target} is already mounted at ${r.dest}`;
  return `mounted ${r.target} (${r.digest}) ${r.writable ? 'writable' : 'read-only'} at ${r.dest}`;
}

function mountOptions(cmd: Command): Command {
  return cmd
    .option('--readonly', 'mount read-only (default: writable, writes discarded at unmount)')
    .option('--require-verity', 'refuse layers without a verity root hash')
    .option('--capath <file>', 'manifest CA (default <root>/factory/secure/manifestCA.pem)')
    .option('--dry-run', 'print the mount steps, mount nothing');
}

/** Adds this area's mosctl subcommands: `mount`, `create-boot-fs`, `umount`. */
export function registerMosctl(program: Command): void {
  mountOptions(
    program
      .command('mount')
      .description("mount a target's filesystem from its verified layers: an installed target, or (live CD) one from a signed install manifest SOURCE")
      .argument('[source]', 'install manifest reference, on a machine with nothing installed (host/name:tag or oci:DIR:TAG)')
      .option('-t, --target <name>', 'target to mount (default: hostfs; with SOURCE: livecd, else hostfs)')
      .option('--dest <dir>', 'mount point (default <root>/mnt/mos/<target>)')
      .option('--insecure-registry <host>', 'with SOURCE: allow plain HTTP to this registry host (repeatable)', collect)
      .option('--registry-ca <file>', 'with SOURCE: extra CA for registry TLS (repeatable)', collect),
  ).action(
    action(async (ctx, source: string | undefined, o: MountFlags & { insecureRegistry?: string[]; registryCa?: string[] }) => {
      const target = o.target !== undefined ? { target: o.target } : {};
      const result =
        source === undefined
          ? await (await system()).mountTarget({ ...common(ctx, o), ...target })
          : await (await system()).mountRemote({
              ...common(ctx, o),
              ...target,
              source,
              ...(o.insecureRegistry ? { insecureHosts: o.insecureRegistry } : {}),
              ...(o.registryCa ? { caFiles: o.registryCa } : {}),
            });
      return { result, text: text(result) };
    }),
  );
  mountOptions(
    program
      .command('create-boot-fs')
      .description('mount hostfs for the initrd to switch_root into')
      .option('--dest <dir>', 'mount point', '/sysroot'),
  ).action(
    action(async (ctx, o: MountFlags) => {
      const result = await (await system()).createBootFs(common(ctx, o));
      return { result, text: text(result) };
    }),
  );
  program
    .command('umount')
    .description('unmount a root mounted by mount or create-boot-fs, releasing its layers and writable dirs')
    .requiredOption('--dest <dir>', 'mount point')
    .action(
      action(async (ctx, o: { dest: string }) => {
        const result = await (await system()).umountTarget({ root: ctx.globals.root, dest: resolve(o.dest), log: ctx.log });
        return { result, text: result.unmounted ? `unmounted ${result.dest}` : `nothing mounted at ${result.dest}` };
      }),
    );
}

/** Adds this area's mosb subcommands. */
export function registerMosb(_program: Command): void {}
