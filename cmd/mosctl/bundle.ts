import type { Command } from 'commander';
import type { SiteBundleReport } from '../../src/machine/index.js';
import { capathOf, capathOption, collect, registryAccess, registryOptions, seconds, type RegistryFlags } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

type Flags = RegistryFlags & { readonly capath?: string };

function summary(b: SiteBundleReport): string {
  const parts = [
    `site ${b.site} version ${b.version} (${b.digest.slice(0, 12)})`,
    `signed by "${b.signer}" (trust set ${b.trustVersion})`,
    `${b.caCertificates} CA certificate(s), ${b.env.length} env setting(s)${b.registriesConf ? ', registries.conf' : ''}${b.auth ? ', registry credentials' : ''}`,
  ];
  if (b.provision) parts.push(`provision: ${b.provision.source}${b.provision.device ? ` from ${b.provision.device}` : ''}`);
  return parts.join('\n');
}

/** `mosctl bundle verify|apply|inject|status`: site bundles (README "Site bundles and commissioning"). */
export function register(program: Command): void {
  const bundle = program.command('bundle').description('site bundles: per-site settings signed by a site key, injected at boot');

  registryOptions(capathOption(bundle.command('verify')))
    .description("verify a site bundle against this machine's CA and site trust sets; write nothing")
    .argument('<source>', 'a bundle file (JSON), oci:DIR:TAG, or a registry reference')
    .action(
      action(async (ctx, source: string, o: Flags) => {
        const r = await (await machine()).verifySiteBundle({ root: ctx.globals.root, source, ...capathOf(o), access: registryAccess(o), log: ctx.log });
        const rel = r.newer === null ? 'the machine has no bundle yet' : r.newer ? 'newer than the one in force' : 'not newer than the one in force';
        return { result: r, text: `verified ${source}\n${summary(r)}\n(${rel})` };
      }),
    );

  registryOptions(capathOption(bundle.command('apply')))
    .description('verify a newer site bundle, record it in config/site/ and write its files (the operator path)')
    .argument('<source>', 'a bundle file (JSON), an http(s) URL, oci:DIR:TAG, or a registry reference')
    .option('--dest <dir>', 'write the site files under this root instead of --root')
    .option('--dry-run', 'verify and say what would change; write nothing', false)
    .action(
      action(async (ctx, source: string, o: Flags & { dest?: string; dryRun: boolean }) => {
        const r = await (await machine()).applySiteBundle({
          root: ctx.globals.root, source, ...capathOf(o), access: registryAccess(o), log: ctx.log, dryRun: o.dryRun, ...(o.dest !== undefined ? { dest: o.dest } : {}),
        });
        const head = r.dryRun ? `would ${r.changed ? 'apply' : 're-write the files of'}` : r.changed ? 'applied' : 'already in force; files re-written:';
        return { result: r, text: `${head} ${source}\n${summary(r)}${r.written.length ? `\nwrote ${r.written.join(', ')}` : ''}` };
      }),
    );

  registryOptions(capathOption(bundle.command('inject')))
    .description('boot step (initrd): use the recorded bundle, or accept the first verifying candidate while uncommissioned; write the site files into --dest')
    .option('--candidate <source>', 'a bundle found on the ESP, a medium or the command line (repeatable, in precedence order)', collect)
    .option('--dest <dir>', 'the new root to write the site files into')
    .option('--network-wait <seconds>', 'how long to retry a URL candidate (${uuid}, ${serial}, ${mac} expanded) with backoff', '60')
    .action(
      action(async (ctx, o: Flags & { candidate?: string[]; dest?: string; networkWait: string }) => {
        const r = await (await machine()).injectSiteBundle({
          root: ctx.globals.root, ...capathOf(o), access: registryAccess(o), log: ctx.log, candidates: o.candidate ?? [], ...(o.dest !== undefined ? { dest: o.dest } : {}),
          networkWaitMs: seconds(o.networkWait, '--network-wait', 0, 86_400) * 1000,
        });
        const lines: string[] = [];
        if (!r.bundle) lines.push('no site bundle: the machine is uncommissioned');
        else lines.push(`${r.accepted ? 'accepted' : 'in force:'} site bundle ${r.bundle.site} version ${r.bundle.version}${r.written.length ? `; wrote ${r.written.length} file(s)` : ''}`);
        for (const i of r.ignored) lines.push(`ignored ${i.source}: ${i.reason}`);
        if (r.provision && !r.installed) lines.push(`provision: ${r.provision.source}${r.provision.device ? ` from ${r.provision.device}` : ''}`);
        return { result: r, text: lines.join('\n') };
      }),
    );

  capathOption(bundle.command('status'))
    .description('the site bundle in force, its trust sets and what was ignored')
    .action(
      action(async (ctx, o: { capath?: string }) => {
        const r = await (await machine()).siteBundleStatus({ root: ctx.globals.root, ...capathOf(o) });
        if (!r.bundle || !r.state) return { result: r, text: 'uncommissioned: no site bundle recorded' };
        const s = r.state;
        const lines = [summary(r.bundle), `accepted ${s.acceptedAt} from ${s.source}`, `trust sets: 0 (manifest CA)${s.rotations.map((x) => ` -> ${x.version}`).join('')}`];
        for (const d of s.dropped) lines.push(`trust set ${d.version} dropped at ${d.at}`);
        for (const i of s.ignored) lines.push(`ignored at ${i.at}: ${i.source}: ${i.reason}`);
        return { result: r, text: lines.join('\n') };
      }),
    );
}
