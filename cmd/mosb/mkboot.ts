import type { Command } from 'commander';
import { resolve } from 'node:path';
import { collect, registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { build } from './load.js';
import { signOf } from './uki.js';

interface MkbootFlags extends RegistryFlags {
  readonly install: string[];
  readonly ca: string;
  readonly uki?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly machineCmdline?: string;
  readonly machineUki?: string;
  readonly siteBundle?: string;
  readonly signKey?: string;
  readonly signCert?: string;
}

/** `mosb mkboot --ca FILE (--uki F | --kernel F --initrd F) LIVE OUT.iso`. */
export function register(program: Command): void {
  registryOptions(
    program
      .command('mkboot')
      .description('a bootable UEFI ISO (label OCI-BOOT) carrying the live manifest and the releases to install as an OCI layout, verified first')
      .argument('<LIVE>', 'live install manifest (with a livecd target): oci:DIR:TAG or HOST/NAME:TAG')
      .argument('<OUT>', 'ISO file to write')
      .requiredOption('--ca <file>', 'the manifest CA (the one inside the initrd): every manifest must verify against it')
      .option('--install <source>', 'a release the live system can install (repeatable)', collect, [])
      .option('--uki <file>', 'a finished UKI (mosb uki build)')
      .option('--kernel <file>', 'or build one: kernel bzImage')
      .option('--initrd <file>', 'and initramfs (mosb initrd build)')
      .option('--cmdline <text>', 'extra kernel command line after root=soci:name=LIVE,dev=LABEL=OCI-BOOT')
      .option('--machine-cmdline <text>', 'extra command line of the installed machine\'s UKI (boot/mosctl.efi, after root=soci:name=mosboot,repo=local)')
      .option('--machine-uki <file>', 'with --uki: a finished UKI for installed machines')
      .option('--site-bundle <file>', 'a site bundle (mosb bundle create) for the live system and the machines it installs; verified against --ca')
      .option('--sign-key <file>', 'Secure Boot signing key for the built UKI, PEM')
      .option('--sign-cert <file>', 'its certificate, PEM'),
  ).action(
    action(async (ctx, live: string, out: string, f: MkbootFlags) => {
      const r = await (await build()).mkboot({
        live, out: resolve(out), ca: resolve(f.ca), install: f.install,
        ...(f.uki !== undefined ? { uki: resolve(f.uki) } : {}),
        ...(f.kernel !== undefined ? { kernel: resolve(f.kernel) } : {}),
        ...(f.initrd !== undefined ? { initrd: resolve(f.initrd) } : {}),
        ...(f.cmdline !== undefined ? { cmdline: f.cmdline } : {}),
        ...(f.machineCmdline !== undefined ? { machineCmdline: f.machineCmdline } : {}),
        ...(f.machineUki !== undefined ? { machineUki: resolve(f.machineUki) } : {}),
        ...(f.siteBundle !== undefined ? { siteBundle: resolve(f.siteBundle) } : {}),
        ...signOf(f), ...registryAccess(f),
        log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal,
      });
      return {
        result: r,
        text: `${r.out}: ${mib(r.bytes)} MiB ISO (label OCI-BOOT) in ${r.seconds.toFixed(1)} s: ${r.tags.join(', ')}; ${r.images} images; UKI ${mib(r.uki.bytes)} MiB${r.uki.signed ? ' signed' : ''}\nsha256 ${r.sha256}${r.cmdline ? `\ncommand line: ${r.cmdline}` : ''}${r.machineCmdline ? `\ninstalled machines (boot/mosctl.efi): ${r.machineCmdline}` : ''}${r.siteBundle ? `\nsite bundle ${r.siteBundle.site} version ${r.siteBundle.version} (site-bundle.json)` : ''}`,
      };
    }),
  );
}
