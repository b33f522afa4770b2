import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb manifest validate FILE`. */
export function register(program: Command): void {
  group(program, 'manifest', 'Validate and publish install manifests')
    .command('validate')
    .description('check a manifest.yaml, install.json or manifest.json (chosen by content); print every problem')
    .argument('<file>', 'the manifest file')
    .action(
      action(async (_ctx, file: string) => {
        const r = await (await build()).validateManifestFile(file);
        const lines = r.valid ? [`${file}: valid ${r.kind}`] : r.problems.map((p) => `${p.subject ?? file}: ${p.message}${p.hint ? ` (hint: ${p.hint})` : ''}`);
        return { result: r, text: lines.join('\n'), ...(r.valid ? {} : { failure: 'MANIFEST_INVALID' as const }) };
      }),
    );
}
