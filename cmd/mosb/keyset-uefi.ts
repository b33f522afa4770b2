import type { Command } from 'commander';
import { resolve } from 'node:path';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

interface UefiFlags {
  readonly ovmfVars?: string;
  readonly template?: string;
}

/** `mosb keyset uefi KEYSET [--ovmf-vars OUT]`. */
export function register(program: Command): void {
  group(program, 'keyset', 'manifest signing keysets ($XDG_DATA_HOME/machine/trust/keys)')
    .command('uefi')
    .description("create the keyset's missing UEFI Secure Boot keys (uefi-pk, uefi-kek, uefi-db: cert.pem, privkey.pem, guid; existing ones are kept) and optionally an OVMF variables file with them enrolled and Secure Boot on")
    .argument('<keyset>', 'keyset name')
    .option('--ovmf-vars <file>', 'write OVMF variables with PK, KEK and db enrolled (boot with OVMF_CODE_4M.secboot.fd)')
    .option('--template <file>', 'OVMF variables to start from (default /usr/share/OVMF/OVMF_VARS_4M.fd)')
    .action(
      action(async (_ctx, keyset: string, f: UefiFlags) => {
        const b = await build();
        const keys = await b.createUefiKeys({ keyset });
        const lines = b.UEFI_KEYS.map((k) => `uefi-${k}: ${keys.keys[k].cert}${keys.created.includes(k) ? ' (created)' : ''}`);
        let vars: Awaited<ReturnType<typeof b.writeOvmfVars>> | undefined;
        if (f.ovmfVars !== undefined) {
          vars = await b.writeOvmfVars({ keyset, out: resolve(f.ovmfVars), ...(f.template !== undefined ? { template: resolve(f.template) } : {}) });
          lines.push(`OVMF variables with PK, KEK and db enrolled, Secure Boot on: ${vars.out}`);
        }
        return { result: { ...keys, ...(vars ? { ovmfVars: vars } : {}) }, text: lines.join('\n') };
      }),
    );
}
