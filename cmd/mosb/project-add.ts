import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb project add KEYSET:PROJECT`. */
export function register(program: Command): void {
  group(program, 'project', 'signing projects inside a keyset')
    .command('add')
    .description('create a project signing certificate issued by the keyset CA')
    .argument('<keyset:project>', 'KEYSET:PROJECT')
    .action(
      action(async (_ctx, spec: string) => {
        const lib = await build();
        const paths = await lib.createProject(lib.parseProjectSpec(spec));
        return { result: paths, text: `created project ${spec}\ncert: ${paths.cert}\nkey:  ${paths.key}` };
      }),
    );
}
