import type { Command } from 'commander';
import { resolve } from 'node:path';
import { MosError } from '../../src/base/index.js';
import type { InstallDiskResult, InstallResult } from '../../src/machine/index.js';
import { capathOf, capathOption, registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { short, table } from '../shared/format.js';
import { action } from '../shared/run.js';
import { wholeNumber } from '../shared/flags.js';
import { machine } from './load.js';

/** Flags of the commands that fetch a signed install manifest (install, update). */
export type SourceFlags = RegistryFlags & { readonly capath?: string; readonly wait?: boolean };

/** Adds the flags of commands that fetch a signed install manifest. */
export function sourceOptions(cmd: Command): Command {
  return registryOptions(capathOption(cmd)).option('--wait', 'wait for a busy config lock instead of failing', false);
}

/** The library options of those flags. */
export function sourceAccess(o: SourceFlags) {
  return { ...capathOf(o), ...registryAccess(o), wait: o.wait === true };
}

/** `mosctl install SOURCE`. */
export function register(program: Command): void {
  sourceOptions(program.command('install').argument('<source>', 'host[:port]/name:tag, host/name@sha256:…, or oci:DIR:TAG'))
    .description('verify a signed install manifest, pull its images and create config/manifest.git')
    .option('--dry-run', 'verify and validate, show what would be fetched; write nothing', false)
    .option('--tries <n>', 'boots a new generation may take to become good before it falls back (default 2)')
    .option('--partition', 'live system: verify, then partition a disk (esp, machine-config, machine-store, machine-scratch) and install onto it', false)
    .option('--disk <dev>', 'with --partition: the disk (default: the only one that is not the live medium or in use)')
    .option('--wipe', 'with --partition: replace a partition table that is not mosctl\'s own layout', false)
    .option('--site-bundle <file>', 'with --partition: a site bundle to put on the new ESP (the machine takes it at its first boot); verified first')
    .option('--uki <file>', "with --partition: the UKI to put on the ESP (EFI/BOOT/BOOTX64.EFI and EFI/mosctl/mosctl.efi); default the release's bootkit target's")
    .action(
      action(async (ctx, source: string, o: SourceFlags & { dryRun: boolean; tries?: string; partition: boolean; disk?: string; wipe: boolean; uki?: string; siteBundle?: string }) => {
        const tries = o.tries !== undefined ? { tries: wholeNumber(o.tries, '--tries', 1, 10) } : {};
        const common = { root: ctx.globals.root, source, ...sourceAccess(o), ...tries, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal };
        if (!o.partition) {
          for (const [flag, v] of [['--disk', o.disk], ['--wipe', o.wipe || undefined], ['--uki', o.uki], ['--site-bundle', o.siteBundle]] as const) {
            if (v !== undefined) throw new MosError({ code: 'USAGE', subject: flag, message: 'only goes with --partition' });
          }
          const r = await (await machine()).install({ ...common, dryRun: o.dryRun });
          return { result: r, text: installText(r) };
        }
        if (o.dryRun) throw new MosError({ code: 'USAGE', subject: '--dry-run', message: 'does not go with --partition (use mosctl install --dry-run SOURCE to check a release)' });
        const r = await (await machine()).installDisk({ ...common, ...(o.disk !== undefined ? { disk: o.disk } : {}), wipe: o.wipe, ...(o.uki !== undefined ? { uki: resolve(o.uki) } : {}), ...(o.siteBundle !== undefined ? { siteBundle: resolve(o.siteBundle) } : {}) });
        return { result: r, text: diskText(r) };
      }),
    );
}

function diskText(r: InstallDiskResult): string {
  const ph = r.phases;
  return [
    installText(r),
    `disk ${r.disk}${r.reused ? ' (layout of a previous attempt reused)' : ''}: ${r.partitions.map((p) => `${p.name} ${p.device} ${p.sizeMiB} MiB`).join(', ')}`,
    r.boot
      ? `UKI on the ESP: ${r.boot.files.join(', ')}${r.efiEntry ? `; boot entry ${r.efiEntry}` : ''}; from ${r.boot.from === 'file' ? r.boot.path : `the bootkit target ${r.boot.version} (${short(r.boot.digest)})`}`
      : 'no --uki and no bootkit target: the ESP is empty',
    ...(r.siteBundle ? [`site bundle ${r.siteBundle.site} version ${r.siteBundle.version} on the ESP (EFI/mosctl/site-bundle.json)`] : []),
    `phases: verify ${ph.verify.toFixed(1)} s, partition ${ph.partition.toFixed(1)} s, copy ${ph.copy.toFixed(1)} s, boot ${ph.boot.toFixed(1)} s`,
  ].join('\n');
}

function installText(r: InstallResult): string {
  return [
    r.dryRun
      ? `would install ${r.product} (manifest ${r.manifest.slice(0, 12)}, signed by ${r.signer}): ${r.bytesToFetch} bytes to fetch; nothing written`
      : `installed ${r.product} (manifest ${r.manifest.slice(0, 12)}, signed by ${r.signer}) as generation 1`,
    table(['TARGET', 'VERSION', 'DIGEST'], r.targets.map((t) => [t.name, t.version, short(t.digest)])),
  ].join('\n');
}
