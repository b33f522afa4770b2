import type { Command } from 'commander';
import type { InstallResult } from '../../src/machine/index.js';
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
    .action(
      action(async (ctx, source: string, o: SourceFlags & { dryRun: boolean; tries?: string }) => {
        const tries = o.tries !== undefined ? { tries: wholeNumber(o.tries, '--tries', 1, 10) } : {};
        const r = await (await machine()).install({ root: ctx.globals.root, source, ...sourceAccess(o), ...tries, dryRun: o.dryRun, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
        return { result: r, text: installText(r) };
      }),
    );
}

function installText(r: InstallResult): string {
  return [
    r.dryRun
      ? `would install ${r.product} (manifest ${r.manifest.slice(0, 12)}, signed by ${r.signer}): ${r.bytesToFetch} bytes to fetch; nothing written`
      : `installed ${r.product} (manifest ${r.manifest.slice(0, 12)}, signed by ${r.signer}) as generation 1`,
    table(['TARGET', 'VERSION', 'DIGEST'], r.targets.map((t) => [t.name, t.version, short(t.digest)])),
  ].join('\n');
}
