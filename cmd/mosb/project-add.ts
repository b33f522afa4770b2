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
    .option('--site', "a site key instead: signs site bundles only (mosctl's site-bundle EKU), never install manifests", false)
    .action(
      action(async (_ctx, spec: string, o: { site: boolean }) => {
        const lib = await build();
        const paths = await lib.createProject({ ...lib.parseProjectSpec(spec), site: o.site });
        return { result: paths, text: `created ${o.site ? 'site key' : 'project'} ${spec}\ncert: ${paths.cert}\nkey:  ${paths.key}` };
      }),
    );
}
