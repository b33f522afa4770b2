import type { Command } from 'commander';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb keyset rotate OLD NEW`: manifest CA rotation by cross-certificate. */
export function register(program: Command): void {
  group(program, 'keyset', 'manifest signing keysets ($XDG_DATA_HOME/machine/trust/keys)')
    .command('rotate')
    .description("certify NEW's manifest CA with OLD's, so machines trusting OLD accept what NEW's projects sign (created after this)")
    .argument('<old>', 'the keyset machines trust now')
    .argument('<new>', 'the keyset to move to (mosb keyset add NEW first)')
    .action(
      action(async (_ctx, from: string, to: string) => {
        const r = await (await build()).rotateKeyset({ from, to });
        return { result: r, text: `keyset ${to}'s CA is certified by ${from}: ${r.crossCert}\nprojects created in ${to} from now on carry it after their certificate` };
      }),
    );
}
