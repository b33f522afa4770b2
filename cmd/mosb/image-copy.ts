import type { Command } from 'commander';
import { mib } from '../shared/format.js';
import { registryAccess, registryOptions, wholeNumber, type RegistryFlags } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb image copy SRC DST`. */
export function register(program: Command): void {
  registryOptions(
    group(program, 'image', 'Build, copy and inspect OCI images')
      .command('copy')
      .description('copy an image between registries and OCI layouts (like skopeo copy): docker://HOST/NAME:TAG, HOST/NAME@sha256:…, oci:DIR:TAG')
      .argument('<SRC>', 'source reference')
      .argument('<DST>', 'destination reference')
      .option('--all', 'copy every platform of an index (default: the host platform only)', false)
      .option('--concurrency <n>', 'blobs transferred at once (default 4)'),
  ).action(
    action(async (ctx, src: string, dst: string, f: RegistryFlags & { all: boolean; concurrency?: string }) => {
      const concurrency = f.concurrency === undefined ? {} : { concurrency: wholeNumber(f.concurrency, '--concurrency', 1, 64) };
      const r = await (await build()).copyImage({ src, dst, ...registryAccess(f), all: f.all, ...concurrency, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
      return {
        result: r,
        text: `copied ${r.src} -> ${r.dst}\n${r.descriptor.digest}: ${r.blobsCopied} blobs (${mib(r.bytesCopied)} MiB) copied, ${r.blobsSkipped} already present`,
      };
    }),
  );
}
