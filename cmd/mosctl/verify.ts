import type { Command } from 'commander';
import { capathOption } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';

/** `mosctl verify --cert C --signature S FILE` (or `--bundle B`). */
export function register(program: Command): void {
  capathOption(program.command('verify'))
    .description('verify a signed file (install.json) against the manifest CA: mos signature + cert, or a Sigstore bundle')
    .argument('<file>', 'the signed file')
    .option('--cert <file>', 'signer certificate PEM (intermediates may follow the leaf)')
    .option('--signature <file>', 'raw signature (mos .signed form)')
    .option('--bundle <file>', 'Sigstore bundle v0.3 JSON instead of --signature')
    .option('--tsa-chain <file>', 'TSA certificate chain PEM (signing cert first) for certificate bundles')
    .action(
      action(async (ctx, file: string, flags: { capath?: string; cert?: string; signature?: string; bundle?: string; tsaChain?: string }) => {
        const cert = flags.cert ?? ctx.globals.cert;
        const r = await (await machine()).verifyFile({ root: ctx.globals.root, file, ...flags, ...(cert !== undefined ? { cert } : {}) });
        ctx.log.debug(`chain: ${r.signer.chain.join(' <- ')}`);
        return { result: r, text: `verified ${file}: signed by "${r.signer.subject}"` };
      }),
    );
}
