import type { Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import type { ImageConfigOverrides } from '../../src/build/index.js';
import { argvOf, collect, keyValue } from '../shared/flags.js';
import { action, type CommandContext } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

interface BuildFlags {
  readonly from?: string;
  readonly base?: string;
  readonly entrypoint?: string;
  readonly cmd?: string;
  readonly env: string[];
  readonly workdir?: string;
  readonly user?: string;
  readonly label: string[];
  readonly compression?: string;
  readonly insecureRegistry: string[];
  readonly registryCa: string[];
}

/** `mosb image build ROOTFS_DIR DEST` and `mosb image build --from REF DEST`. */
export function register(program: Command): void {
  group(program, 'image', 'Build, copy and inspect OCI images')
    .command('build')
    .description('build a squashfs-layer image (verity data, root-hash annotation) from ROOTFS_DIR, or convert a tar-layer image with --from REF')
    .argument('[ROOTFS_DIR]', 'directory the image holds (omit with --from)')
    .argument('[DEST]', 'oci:DIR:TAG or host[:port]/name:tag')
    .option('--from <ref>', 'convert this tar-layer image (registry or oci:DIR:TAG) layer by layer instead')
    .option('--base <ref>', 'squashfs image to stack the new layer on (the layer holds only the difference)')
    .option('--entrypoint <cmd>', 'a JSON array, or shell words (quotes as in sh)')
    .option('--cmd <cmd>', 'a JSON array, or shell words (quotes as in sh)')
    .option('--env <K=V>', 'environment entry (repeatable)', collect, [])
    .option('--workdir <dir>', 'working directory')
    .option('--user <user>', 'user[:group] the process runs as')
    .option('--label <K=V>', 'config label (repeatable)', collect, [])
    .option('--compression <alg>', 'squashfs compression: zstd (default when available) or gzip')
    .option('--insecure-registry <host>', 'allow plain HTTP to this host[:port] (repeatable)', collect, [])
    .option('--registry-ca <file>', 'extra PEM CA for registry TLS (repeatable)', collect, [])
    .action(action(runBuild));
}

async function runBuild(ctx: CommandContext, first: string | undefined, second: string | undefined, flags: BuildFlags) {
  if (flags.from !== undefined && second !== undefined) throw usage('with --from give only DEST');
  const dest = flags.from !== undefined ? first : second;
  if (dest === undefined) throw usage(flags.from !== undefined ? 'missing DEST' : 'want ROOTFS_DIR DEST');
  if (flags.compression !== undefined && flags.compression !== 'zstd' && flags.compression !== 'gzip') {
    throw new MosError({ code: 'USAGE', subject: '--compression', message: `"${flags.compression}" is not zstd or gzip` });
  }
  const config = configOf(flags);
  const res = await (await build()).imageBuild({
    dest,
    ...(flags.from !== undefined ? { from: flags.from } : { rootfs: first! }),
    ...(flags.base !== undefined ? { base: flags.base } : {}),
    ...(config ? { config } : {}),
    ...(flags.compression ? { compression: flags.compression as 'zstd' | 'gzip' } : {}),
    insecureHosts: flags.insecureRegistry,
    caFiles: flags.registryCa,
    onProgress: ctx.onProgress, signal: ctx.signal,
    log: ctx.log,
  });
  return { result: res, text: res.descriptor.digest };
}

function configOf(f: BuildFlags): ImageConfigOverrides | undefined {
  const c: { -readonly [K in keyof ImageConfigOverrides]: ImageConfigOverrides[K] } = {};
  if (f.entrypoint !== undefined) c.entrypoint = argvOf(f.entrypoint, '--entrypoint');
  if (f.cmd !== undefined) c.cmd = argvOf(f.cmd, '--cmd');
  if (f.env.length > 0) c.env = f.env.map((e) => (keyValue(e, '--env'), e));
  if (f.workdir !== undefined) c.workdir = f.workdir;
  if (f.user !== undefined) c.user = f.user;
  if (f.label.length > 0) c.labels = Object.fromEntries(f.label.map((l) => keyValue(l, '--label')));
  return Object.keys(c).length > 0 ? c : undefined;
}

function usage(message: string): MosError {
  return new MosError({ code: 'USAGE', subject: 'mosb image build', message, hint: 'mosb image build ROOTFS_DIR DEST | mosb image build --from REF DEST' });
}
