import type { Command } from 'commander';
import { resolve } from 'node:path';
import { MosError } from '../../src/base/index.js';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

interface UkiFlags {
  readonly kernel: string;
  readonly initrd: string;
  readonly cmdline: string;
  readonly stub?: string;
  readonly signKey?: string;
  readonly signCert?: string;
}

/** `--sign-key` and `--sign-cert` come together or not at all. */
export function signOf(f: { signKey?: string; signCert?: string }): { sign?: { key: string; cert: string } } {
  if ((f.signKey === undefined) !== (f.signCert === undefined)) {
    throw new MosError({ code: 'USAGE', subject: f.signKey === undefined ? '--sign-cert' : '--sign-key', message: 'signing needs both --sign-key and --sign-cert' });
  }
  return f.signKey !== undefined ? { sign: { key: resolve(f.signKey), cert: resolve(f.signCert!) } } : {};
}

/** `mosb uki build OUT`. */
export function register(program: Command): void {
  group(program, 'uki', 'Build unified kernel images (systemd EFI stub + kernel + initrd + command line)')
    .command('build')
    .description('join the kernel, the initramfs (with its manifest CA) and a command line into one EFI executable, optionally signed for Secure Boot')
    .argument('<OUT>', 'UKI file to write (e.g. BOOTX64.EFI)')
    .requiredOption('--kernel <file>', 'kernel bzImage (/boot/vmlinuz-*)')
    .requiredOption('--initrd <file>', 'initramfs (mosb initrd build)')
    .requiredOption('--cmdline <text>', 'kernel command line baked into the image')
    .option('--stub <file>', 'EFI stub (default: systemd-boot-efi\'s linuxx64.efi.stub)')
    .option('--sign-key <file>', 'Secure Boot signing key, PEM (with --sign-cert)')
    .option('--sign-cert <file>', 'its certificate, PEM')
    .action(
      action(async (_ctx, out: string, f: UkiFlags) => {
        const r = await (await build()).buildUki({
          out: resolve(out), kernel: resolve(f.kernel), initrd: resolve(f.initrd), cmdline: f.cmdline,
          ...(f.stub !== undefined ? { stub: resolve(f.stub) } : {}), ...signOf(f),
        });
        return { result: r, text: `${r.out}: ${mib(r.bytes)} MiB UKI${r.signed ? ', signed' : ''}, sha256 ${r.sha256}` };
      }),
    );
}
