import type { Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import { parseReference } from '../../src/oci/index.js';
import type { BuildImageResult, ImageConfigOverrides, OpenedReference, RegistryAccess } from '../../src/system/index.js';
import { action, group, type CommandContext } from '../common.js';
import { collect } from '../format.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const system = () => import('../../src/system/index.js');

/** Adds this area's mosctl subcommands. */
export function registerMosctl(_program: Command): void {}

/** Adds this area's mosb subcommands: `image build`. */
export function registerMosb(program: Command): void {
  group(program, 'image', 'Build, copy and inspect OCI images')
    .command('build')
    .description('build a squashfs-layer image (verity data, root-hash annotation) from ROOTFS_DIR, or convert a tar-layer image with --from REF')
    .argument('[ROOTFS_DIR]', 'directory the image holds (omit with --from)')
    .argument('[DEST]', 'oci:DIR:TAG or host[:port]/name:tag')
    .option('--from <ref>', 'convert this tar-layer image (registry or oci:DIR:TAG) layer by layer instead')
    .option('--base <ref>', 'squashfs image to stack the new layer on (the layer holds only the difference)')
    .option('--entrypoint <cmd>', 'a JSON array, or words split at spaces')
    .option('--cmd <cmd>', 'a JSON array, or words split at spaces')
    .option('--env <K=V>', 'environment entry (repeatable)', collect, [])
    .option('--workdir <dir>', 'working directory')
    .option('--user <user>', 'user[:group] the process runs as')
    .option('--label <K=V>', 'config label (repeatable)', collect, [])
    .option('--compression <alg>', 'squashfs compression: zstd (default when available) or gzip')
    .option('--insecure-registry <host>', 'allow plain HTTP to this host[:port] (repeatable)', collect, [])
    .option('--registry-ca <file>', 'extra PEM CA for registry TLS (repeatable)', collect, [])
    .action(action(runBuild));
}

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

async function runBuild(ctx: CommandContext, first: string | undefined, second: string | undefined, flags: BuildFlags) {
  if (flags.from !== undefined && second !== undefined) throw usage('with --from give only DEST');
  if (flags.from !== undefined && flags.base !== undefined) throw usage('--from and --base do not combine');
  const dest = flags.from !== undefined ? first : second;
  if (dest === undefined) throw usage(flags.from !== undefined ? 'missing DEST' : 'want ROOTFS_DIR DEST');
  if (flags.compression !== undefined && flags.compression !== 'zstd' && flags.compression !== 'gzip') {
    throw new MosError({ code: 'USAGE', subject: '--compression', message: `"${flags.compression}" is not zstd or gzip` });
  }
  const access: RegistryAccess = { insecureHosts: flags.insecureRegistry, caFiles: flags.registryCa };
  const config = configOf(flags);
  const tag = destTag(dest);
  const common = {
    tag,
    // Opened (a layout created) only once every input has been checked.
    dst: async () => (await (await system()).openReference(dest, { ...access, create: true, log: ctx.log })).store,
    ...(config ? { config } : {}),
    ...(flags.compression ? { compression: flags.compression as 'zstd' | 'gzip' } : {}),
    onProgress: ctx.onProgress,
    log: ctx.log,
  };
  let res: BuildImageResult;
  if (flags.from !== undefined) {
    res = await (await system()).convertImage({ ...common, from: await source(flags.from, access, ctx) });
  } else {
    res = await (await system()).buildImage({ ...common, rootfs: first!, ...(flags.base !== undefined ? { base: await source(flags.base, access, ctx) } : {}) });
  }
  return { result: res, text: res.descriptor.digest };
}

// The tag DEST names: required, since an untagged image in a layout or registry is unreachable.
function destTag(dest: string): string {
  const ref = parseReference(dest);
  if (ref.tag === undefined || ref.digest !== undefined) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: dest, message: 'DEST needs a tag and no digest', hint: 'write oci:DIR:TAG or host[:port]/name:tag' });
  }
  return ref.tag;
}

async function source(text: string, access: RegistryAccess, ctx: CommandContext): Promise<{ src: OpenedReference['store']; reference: string }> {
  const opened = await (await system()).openReference(text, { ...access, log: ctx.log });
  const reference = opened.reference ?? (opened.ref.kind === 'registry' ? 'latest' : undefined);
  if (reference === undefined) throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: text, message: 'name the image by tag or digest', hint: 'write oci:DIR:TAG' });
  return { src: opened.store, reference };
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

function argvOf(s: string, flag: string): string[] {
  if (!s.trimStart().startsWith('[')) return s.split(/\s+/).filter((w) => w !== '');
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new MosError({ code: 'INPUT_INVALID', subject: flag, message: `${JSON.stringify(s)} is not a JSON array of strings`, hint: 'e.g. \'["/bin/sh","-c","echo hi"]\'' });
  }
  return v as string[];
}

function keyValue(s: string, flag: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new MosError({ code: 'INPUT_INVALID', subject: flag, message: `${JSON.stringify(s)} is not KEY=VALUE` });
  return [s.slice(0, i), s.slice(i + 1)];
}

function usage(message: string): MosError {
  return new MosError({ code: 'USAGE', subject: 'mosb image build', message, hint: 'mosb image build ROOTFS_DIR DEST | mosb image build --from REF DEST' });
}
