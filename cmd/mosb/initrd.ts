import type { Command } from 'commander';
import { resolve } from 'node:path';
import { MosError } from '../../src/base/index.js';
import { collect } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

interface InitrdFlags {
  readonly modules: string;
  readonly kver?: string;
  readonly ca?: string;
  readonly keyset?: string;
  readonly module: string[];
  readonly bundle?: string;
  readonly node?: string;
  readonly compression: string;
  readonly add: string[];
}

function addOf(spec: string): { from: string; to: string } {
  const i = spec.lastIndexOf(':');
  if (i <= 0 || !spec.slice(i + 1).startsWith('/')) throw new MosError({ code: 'USAGE', subject: '--add', message: `${JSON.stringify(spec)} is not SRC:/ABSOLUTE/DEST` });
  return { from: resolve(spec.slice(0, i)), to: spec.slice(i + 1) };
}

const MiB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** `mosb initrd build OUT` and `mosb initrd bundle DIR`. */
export function register(program: Command): void {
  const initrd = group(program, 'initrd', 'Build the initramfs that boots a machine through mosctl');
  initrd
    .command('build')
    .description('a minimal initramfs: busybox, the kernel modules the boot path needs, node, the mosctl bundle, the manifest CA, mosctl\'s boot hook as /init')
    .argument('<OUT>', 'initramfs file to write (cpio, compressed)')
    .option('--modules <dir>', 'root of the kernel module tree (DIR/lib/modules/KVER)', '/')
    .option('--kver <version>', 'kernel version (default: the only one under --modules)')
    .option('--ca <file>', 'manifest CA certificate(s), PEM')
    .option('--keyset <name>', "or: this keyset's manifest CA")
    .option('--module <name>', 'an extra kernel module, with its dependencies (repeatable)', collect, [])
    .option('--bundle <dir>', 'mosctl bundle directory (default: dist/bundle of this mosb)')
    .option('--node <file>', 'node binary (default /usr/bin/node)')
    .option('--compression <alg>', 'zstd, gzip or none', 'zstd')
    .option('--add <src:dest>', 'an extra file (e.g. a hook in /etc/mosctl/initrd.d/NAME.sh, sourced before the boot flow) (repeatable)', collect, [])
    .action(
      action(async (ctx, out: string, f: InitrdFlags) => {
        if (!['zstd', 'gzip', 'none'].includes(f.compression)) throw new MosError({ code: 'USAGE', subject: '--compression', message: `"${f.compression}" is not zstd, gzip or none` });
        const r = await (await build()).buildInitrd({
          out: resolve(out),
          modules: resolve(f.modules),
          ...(f.kver !== undefined ? { kver: f.kver } : {}),
          ...(f.ca !== undefined ? { ca: resolve(f.ca) } : {}),
          ...(f.keyset !== undefined ? { keyset: f.keyset } : {}),
          extraModules: f.module,
          ...(f.bundle !== undefined ? { bundle: resolve(f.bundle) } : {}),
          ...(f.node !== undefined ? { node: resolve(f.node) } : {}),
          compression: f.compression as 'zstd' | 'gzip' | 'none',
          add: f.add.map(addOf),
          onProgress: ctx.onProgress,
        });
        return {
          result: r,
          text: `${r.out}: ${MiB(r.bytes)} ${f.compression} (${MiB(r.uncompressedBytes)} unpacked, mosctl+node ${MiB(r.mosctlBytes)}), kernel ${r.kver}, ${r.modules.length} modules, sha256 ${r.sha256}`,
        };
      }),
    );
  initrd
    .command('bundle')
    .description('mosctl as one ES module for the system node (DIR/mosctl.mjs) plus its native flock addon')
    .argument('<DIR>', 'output directory (replaced)')
    .action(
      action(async (_ctx, dir: string) => {
        const r = await (await build()).bundleMosctl(resolve(dir));
        return { result: r, text: `${r.file}: ${MiB(r.bytes)}, sha256 ${r.sha256}` };
      }),
    );
}
