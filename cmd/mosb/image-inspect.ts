import type { Command } from 'commander';
import type { InspectImageResult } from '../../src/build/index.js';
import { registryAccess, registryOptions, type RegistryFlags } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb image inspect REF`. */
export function register(program: Command): void {
  registryOptions(
    group(program, 'image', 'Build, copy and inspect OCI images')
      .command('inspect')
      .description('show an image manifest (verified) with a summary of its config')
      .argument('<REF>', 'docker://HOST/NAME:TAG, HOST/NAME@sha256:…, or oci:DIR:TAG')
      .option('--raw', 'print the exact manifest bytes', false),
  ).action(
    action(async (ctx, ref: string, f: RegistryFlags & { raw: boolean }) => {
      const r = await (await build()).inspectImage({ ref, ...registryAccess(f), log: ctx.log });
      if (f.raw) return { result: JSON.parse(r.raw) as unknown, text: r.raw };
      const { raw: _raw, ...summary } = r;
      return { result: summary, text: inspectText(r) };
    }),
  );
}

function inspectText(r: InspectImageResult): string {
  const lines = [`${r.reference}`, `digest:    ${r.descriptor.digest}`, `mediaType: ${r.descriptor.mediaType}`, `size:      ${r.descriptor.size}`];
  if (r.os || r.architecture) lines.push(`platform:  ${r.os ?? '?'}/${r.architecture ?? '?'}`);
  if (r.created) lines.push(`created:   ${r.created}`);
  for (const [k, v] of Object.entries(r.labels ?? {})) lines.push(`label:     ${k}=${v}`);
  if (r.config) lines.push(`config:    ${r.config.digest} (${r.config.mediaType})`);
  for (const l of r.layers ?? []) lines.push(`layer:     ${l.digest} ${l.size} ${l.mediaType}`);
  for (const m of r.manifests ?? []) lines.push(`manifest:  ${m.digest} ${m.platform ? `${m.platform.os}/${m.platform.architecture}` : ''} ${m.mediaType}`);
  return lines.join('\n');
}
