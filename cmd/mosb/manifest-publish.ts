import { Option, type Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import { registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { action, type CommandContext } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

interface PublishFlags extends RegistryFlags {
  readonly repo?: string;
  readonly name?: string;
  readonly project?: string;
  readonly product?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly skipBootkit?: boolean;
  readonly skipBoot?: boolean;
  readonly requireBootkit?: boolean;
  readonly created?: string;
}

/** `mosb manifest publish`. */
export function register(program: Command): void {
  registryOptions(group(program, 'manifest', 'Validate and publish install manifests').command('publish'))
    .description('compile manifest.yaml to install.json, pin and copy its images, sign it, and push the install artifact with its certificate and signature')
    .argument('<manifest.yaml>', 'the manifest to publish')
    .option('--repo <host:port|oci:DIR>', 'registry to publish to (images go to <repo>/mos:<hex>), or an OCI layout holding everything')
    .option('--name <name:tag>', 'repository and tag of the install artifact, e.g. machine/install:1.0.0')
    .option('--project <keyset:project>', 'sign with this keyset project (see mosb project add)')
    .addOption(new Option('--product <keyset:project>', 'alias of --project').hideHelp())
    .option('--cert <file>', 'signer certificate PEM (with --key, instead of --project)')
    .option('--key <file>', 'signer private key PEM')
    .option('--skip-bootkit', 'do not add the keyset\'s bootkit target (added by default to a complete manifest signed with --project when the keyset has a bootkit and the manifest lists none)')
    .addOption(new Option('--skip-boot', 'alias of --skip-bootkit').hideHelp())
    .option('--require-bootkit', 'refuse to publish when the keyset has no bootkit (mos\'s behaviour; see mosb keyset bootkit)')
    .option('--created <rfc3339>', 'created annotation of the artifacts (default $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z)')
    .action(action(runPublish));
}

async function runPublish(ctx: CommandContext, file: string, flags: PublishFlags) {
  // mos's wording for a missing --name is "Repo is required"; name the flag that is missing instead.
  if (flags.repo === undefined) throw usage('--repo', 'is required (HOST:PORT or oci:DIR)');
  if (flags.name === undefined) throw usage('--name', 'is required (NAME:TAG)');
  if (flags.project !== undefined && flags.product !== undefined && flags.project !== flags.product) {
    throw usage('--product', 'is an alias of --project; give one');
  }
  const project = flags.project ?? flags.product;
  const created = createdOf(flags.created);
  const res = await (await build()).publish({
    manifestFile: file,
    repo: flags.repo,
    name: flags.name,
    ...(project !== undefined ? { project } : {}),
    ...(flags.cert !== undefined ? { cert: flags.cert } : {}),
    ...(flags.key !== undefined ? { key: flags.key } : {}),
    skipBootkit: flags.skipBootkit === true || flags.skipBoot === true,
    requireBootkit: flags.requireBootkit === true,
    ...(created ? { created } : {}),
    ...registryAccess(flags),
    log: ctx.log,
    onProgress: ctx.onProgress, signal: ctx.signal,
  });
  return { result: res, text: `${res.reference}\n${res.digest}${res.added.map((n) => `\nadded target ${n} from the keyset`).join('')}` };
}

function createdOf(flag: string | undefined): Date | undefined {
  if (flag !== undefined) {
    const d = new Date(flag);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(flag) || Number.isNaN(d.getTime())) throw usage('--created', `"${flag}" is not an RFC 3339 time`);
    return d;
  }
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === '') return undefined;
  if (!/^\d+$/.test(epoch)) throw usage('SOURCE_DATE_EPOCH', `"${epoch}" is not a number of seconds`);
  return new Date(Number(epoch) * 1000);
}

function usage(subject: string, message: string): MosError {
  return new MosError({ code: 'USAGE', subject, message, hint: 'see mosb manifest publish --help' });
}
