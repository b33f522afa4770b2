import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb keyset add NAME`. */
export function register(program: Command): void {
  group(program, 'keyset', 'manifest signing keysets ($XDG_DATA_HOME/machine/trust/keys)')
    .command('add')
    .description('create a keyset with a self-signed manifest CA (RSA-3072)')
    .argument('<name>', 'keyset name')
    .action(
      action(async (_ctx, name: string) => {
        const paths = await (await build()).createKeyset({ name });
        return { result: paths, text: `created keyset ${name}\nmanifest CA: ${paths.caCert}` };
      }),
    );
}
