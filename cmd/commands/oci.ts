import { Option, type Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import type { RegistryAccess } from '../../src/system/index.js';
import { action, group, type CommandContext, type CommandOutput } from '../common.js';
import { collect } from '../format.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const system = () => import('../../src/system/index.js');


/** Adds this area's mosctl subcommands: `fsck`, `gc`. */
export function registerMosctl(program: Command): void {
  program
    .command('fsck')
    .description('verify every blob of the image store (<root>/atomfs-store/mos), that every current target is present, and every generation\'s signatures')
    .option('--clean', 'remove temp files left by crashed writers', false)
    .option('--capath <file>', 'manifest CA (default <root>/factory/secure/manifestCA.pem)')
    .option('--skip-signatures', 'check the image store only, not the signatures of the config', false)
    .action(action(runFsck));
  program
    .command('gc')
    .description('remove store blobs that no generation in history references')
    .addOption(new Option('--dry-run', 'list what would be removed, change nothing').conflicts('force'))
    .option('--force', 'collect even if a generation cannot be read (its images stay only if another generation uses them)', false)
    .action(action(runGc));
}

/** Adds this area's mosb subcommands: `image copy`, `image inspect`. */
export function registerMosb(program: Command): void {
  const image = group(program, 'image', 'Build, copy and inspect OCI images');
  image
    .command('copy')
    .description('copy an image between registries and OCI layouts (like skopeo copy): docker://HOST/NAME:TAG, HOST/NAME@sha256:…, oci:DIR:TAG')
    .argument('<SRC>', 'source reference')
    .argument('<DST>', 'destination reference')
    .option('--all', 'copy every platform of an index (default: the host platform only)', false)
    .option('--concurrency <n>', 'blobs transferred at once (default 4)')
    .option('--insecure-registry <host>', 'allow plain HTTP to this host[:port] (repeatable; loopback always allowed)', collect, [])
    .option('--registry-ca <file>', 'extra PEM CA for registry TLS (repeatable)', collect, [])
    .option('--authfile <file>', 'registry credentials (default $REGISTRY_AUTH_FILE, then ~/.docker/config.json)')
    .action(action(runCopy));
  image
    .command('inspect')
    .description('show an image manifest (verified) with a summary of its config')
    .argument('<REF>', 'docker://HOST/NAME:TAG, HOST/NAME@sha256:…, or oci:DIR:TAG')
    .option('--raw', 'print the exact manifest bytes', false)
    .option('--insecure-registry <host>', 'allow plain HTTP to this host[:port] (repeatable)', collect, [])
    .option('--registry-ca <file>', 'extra PEM CA for registry TLS (repeatable)', collect, [])
    .option('--authfile <file>', 'registry credentials file')
    .action(action(runInspect));
}

interface AccessFlags {
  readonly insecureRegistry: string[];
  readonly registryCa: string[];
  readonly authfile?: string;
}

function access(f: AccessFlags): RegistryAccess {
  return { insecureHosts: f.insecureRegistry, caFiles: f.registryCa, ...(f.authfile !== undefined ? { authFile: f.authfile } : {}) };
}

async function runCopy(ctx: CommandContext, src: string, dst: string, f: AccessFlags & { all: boolean; concurrency?: string }): Promise<CommandOutput> {
  let concurrency: number | undefined;
  if (f.concurrency !== undefined) {
    concurrency = Number(f.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
      throw new MosError({ code: 'USAGE', subject: '--concurrency', message: `${JSON.stringify(f.concurrency)} is not a whole number from 1 to 64` });
    }
  }
  const r = await (await system()).copyImage({ src, dst, ...access(f), all: f.all, ...(concurrency ? { concurrency } : {}), log: ctx.log, onProgress: ctx.onProgress });
  const mib = (r.bytesCopied / 1048576).toFixed(1);
  return {
    result: r,
    text: `copied ${r.src} -> ${r.dst}\n${r.descriptor.digest}: ${r.blobsCopied} blobs (${mib} MiB) copied, ${r.blobsSkipped} already present`,
  };
}

async function runInspect(ctx: CommandContext, ref: string, f: AccessFlags & { raw: boolean }): Promise<CommandOutput> {
  const r = await (await system()).inspectImage({ ref, ...access(f), log: ctx.log });
  if (f.raw) return { result: JSON.parse(r.raw) as unknown, text: r.raw };
  const { raw: _raw, ...summary } = r;
  const lines = [`${r.reference}`, `digest:    ${r.descriptor.digest}`, `mediaType: ${r.descriptor.mediaType}`, `size:      ${r.descriptor.size}`];
  if (r.os || r.architecture) lines.push(`platform:  ${r.os ?? '?'}/${r.architecture ?? '?'}`);
  if (r.created) lines.push(`created:   ${r.created}`);
  for (const [k, v] of Object.entries(r.labels ?? {})) lines.push(`label:     ${k}=${v}`);
  if (r.config) lines.push(`config:    ${r.config.digest} (${r.config.mediaType})`);
  for (const l of r.layers ?? []) lines.push(`layer:     ${l.digest} ${l.size} ${l.mediaType}`);
  for (const m of r.manifests ?? []) lines.push(`manifest:  ${m.digest} ${m.platform ? `${m.platform.os}/${m.platform.architecture}` : ''} ${m.mediaType}`);
  return { result: summary, text: lines.join('\n') };
}

async function runFsck(ctx: CommandContext, f: { clean: boolean; capath?: string; skipSignatures: boolean }): Promise<CommandOutput> {
  const r = await (await system()).systemFsck({ root: ctx.globals.root, clean: f.clean, skipSignatures: f.skipSignatures, ...(f.capath ? { capath: f.capath } : {}), log: ctx.log });
  const lines = [`${r.store}: ${r.blobs} blobs, ${(r.bytes / 1048576).toFixed(1)} MiB, ${r.ok ? 'ok' : 'PROBLEMS'}`];
  if (r.installed && !f.skipSignatures) lines.push(`config: ${r.signaturesVerified} generation${r.signaturesVerified === 1 ? '' : 's'} with verified signatures`);
  for (const p of r.problems) lines.push(`  ${p}`);
  if (r.dangling.length) lines.push(`  ${r.dangling.length} unreferenced blobs (mosctl gc removes them)`);
  if (r.strays.length) lines.push(`  ${r.strays.length} temp files of interrupted writes${f.clean ? ' (removed those of dead writers)' : ' (--clean removes them)'}`);
  // Integrity problems exit 5, like OCI_DIGEST_MISMATCH.
  return { result: r, text: lines.join('\n'), ...(r.ok ? {} : { exitCode: 5 }) };
}

async function runGc(ctx: CommandContext, f: { dryRun?: boolean; force: boolean }): Promise<CommandOutput> {
  const r = await (await system()).systemGc({ root: ctx.globals.root, dryRun: f.dryRun === true, force: f.force, log: ctx.log });
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines = [`${verb} ${r.removed.length} blobs (${(r.bytesFreed / 1048576).toFixed(1)} MiB); kept ${r.retained} for ${r.roots.length} roots from ${r.generations} generations`];
  for (const x of r.removed) lines.push(`  ${x.digest} ${x.size}`);
  for (const tag of r.untagged) lines.push(`  untag ${tag}`);
  if (r.skippedGenerations.length) lines.push(`  skipped unreadable generations: ${r.skippedGenerations.join(', ')}`);
  return { result: r, text: lines.join('\n') };
}
