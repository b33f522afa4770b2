import type { Command } from 'commander';
import { collect, registryAccess, wholeNumber, type RegistryFlags } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { build } from './load.js';

/** `mosb bundle create` and `mosb bundle rotate`: signed site bundles (README "Site bundles and commissioning"). */
export function register(program: Command): void {
  const bundle = program.command('bundle').description('site bundles: per-site settings signed by a site key');

  // Only the push flags of registryOptions: --registries-conf and --auth here are the bundle's content.
  bundle
    .command('create')
    .description('create a site bundle signed by a site key: transport CAs, env, registries.conf, credentials, provisioning source')
    .argument('<out>', 'a file (the bundle as one JSON file), oci:DIR:TAG, or a registry reference')
    .requiredOption('--project <keyset:site>', 'the site key (mosb project add KEYSET:SITE --site)')
    .requiredOption('--bundle-version <n>', 'bundle version: machines refuse one older than theirs (--version is the program version)')
    .option('--site <name>', 'site name (default: SITE of --project)')
    .option('--ca <file>', 'transport CA certificate(s), PEM (repeatable)', collect)
    .option('--env <key=value>', 'environment setting (repeatable)', collect)
    .option('--registries-conf <file>', 'containers-registries.conf v2 for the machines (mirrors)')
    .option('--auth <file>', 'auth.json with registry credentials for the machines')
    .option('--provision <source>', 'install SOURCE an uninstalled machine installs itself from')
    .option('--provision-device <LABEL=name>', 'filesystem holding an oci: provision source')
    .option('--trust <file>', 'trust-set rotation from mosb bundle rotate (repeatable, in version order)', collect)
    .option('--insecure-registry <host>', 'allow plain HTTP to this registry host[:port] when OUT is a registry (repeatable)', collect)
    .option('--registry-ca <file>', 'extra PEM CA certificate for registry TLS (repeatable)', collect)
    .option('--authfile <file>', 'credentials to push OUT with (not carried in the bundle: that is --auth)')
    .action(
      action(async (ctx, out: string, o: Pick<RegistryFlags, 'insecureRegistry' | 'registryCa' | 'authfile'> & {
        registriesConf?: string; project: string; bundleVersion: string; site?: string; ca?: string[]; env?: string[]; auth?: string; provision?: string; provisionDevice?: string; trust?: string[];
      }) => {
        const { registriesConf, insecureRegistry, registryCa, authfile } = o;
        const flags = { ...(insecureRegistry ? { insecureRegistry } : {}), ...(registryCa ? { registryCa } : {}), ...(authfile !== undefined ? { authfile } : {}) };
        const r = await (await build()).createSiteBundle({
          project: o.project,
          version: wholeNumber(o.bundleVersion, '--bundle-version', 1, Number.MAX_SAFE_INTEGER),
          out,
          access: registryAccess(flags),
          log: ctx.log,
          ...(o.site !== undefined ? { site: o.site } : {}),
          ...(o.ca ? { caFiles: o.ca } : {}),
          ...(o.env ? { env: o.env } : {}),
          ...(registriesConf !== undefined ? { registriesConf } : {}),
          ...(o.auth !== undefined ? { authFile: o.auth } : {}),
          ...(o.provision !== undefined ? { provision: o.provision } : {}),
          ...(o.provisionDevice !== undefined ? { provisionDevice: o.provisionDevice } : {}),
          ...(o.trust ? { trustFiles: o.trust } : {}),
        });
        return { result: r, text: `created site bundle ${r.site} version ${r.version} (${r.digest.slice(0, 12)}, ${r.bytes} bytes) in ${r.out}\nsigned by "${r.signer}"` };
      }),
    );

  bundle
    .command('rotate')
    .description('the next site trust set (the CA of --to), signed by the current and the next site key')
    .argument('<out>', 'the rotation file (JSON) for mosb bundle create --trust')
    .requiredOption('--from <keyset:site>', 'a site key of the current trust set')
    .requiredOption('--to <keyset:site>', "a site key of the next set: its keyset's CA becomes the set")
    .requiredOption('--set-version <n>', "the next set's version (the machines' current one + 1; the manifest CA is 0)")
    .option('--overlap-days <n>', 'days bundles signed under the current set still verify', '30')
    .action(
      action(async (_ctx, out: string, o: { from: string; to: string; setVersion: string; overlapDays: string }) => {
        const r = await (await build()).createTrustRotation({
          from: o.from, to: o.to, out,
          version: wholeNumber(o.setVersion, '--set-version', 1, 1_000_000),
          overlapDays: wholeNumber(o.overlapDays, '--overlap-days', 0, 3650),
        });
        return { result: r, text: `trust set version ${r.version} in ${r.out} (the previous set verifies until ${r.overlapUntil})` };
      }),
    );
}
