import type { Command } from 'commander';
import { readFileLimited } from '../../src/host/index.js';
import { MAX_MANIFEST_BYTES, checkManifestFile } from '../../src/manifest/index.js';
import { action, group } from '../common.js';

/** Adds this area's mosctl subcommands. */
export function registerMosctl(_program: Command): void {}

/** Adds this area's mosb subcommands: `manifest validate`. */
export function registerMosb(program: Command): void {
  group(program, 'manifest', 'Validate and publish install manifests')
    .command('validate')
    .description('check a manifest.yaml, install.json or manifest.json (chosen by content); print every problem')
    .argument('<file>', 'the manifest file')
    .action(
      action(async (_ctx, file: string) => {
        const raw = await readFileLimited(file, MAX_MANIFEST_BYTES);
        const { kind, problems } = checkManifestFile(raw, file);
        const valid = problems.length === 0;
        const lines = valid
          ? [`${file}: valid ${kind}`]
          : problems.map((p) => `${p.subject ?? file}: ${p.message}${p.hint ? ` (hint: ${p.hint})` : ''}`);
        return {
          result: { file, kind, valid, problems: problems.map((p) => p.toJSON()) },
          text: lines.join('\n'),
          ...(valid ? {} : { exitCode: 3 }),
        };
      }),
    );
}
