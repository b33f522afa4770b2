import type { Command } from 'commander';
import { resolve } from 'node:path';
import { mib } from '../shared/format.js';
import { action } from '../shared/run.js';
import { group } from './group.js';
import { build } from './load.js';

/** `mosb keyset bootkit KEYSET UKI`. */
export function register(program: Command): void {
  group(program, 'keyset', 'manifest signing keysets ($XDG_DATA_HOME/machine/trust/keys)')
    .command('bootkit')
    .description("create or replace the keyset's bootkit (mos's layout: bootkit/kernel.efi and an OCI layout tagged bootkit-squashfs) from a UKI; manifest publish --project adds it as the bootkit target")
    .argument('<keyset>', 'keyset name')
    .argument('<uki>', 'the unified kernel image installed machines boot (mosb uki build)')
    .action(
      action(async (ctx, keyset: string, uki: string) => {
        const r = await (await build()).createBootkit({ keyset, uki: resolve(uki), log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
        return { result: r, text: `${r.replaced ? 'replaced' : 'created'} the bootkit of keyset ${keyset}: ${r.dir}\nUKI ${mib(r.uki.bytes)} MiB, sha256 ${r.uki.sha256}\nimage ${r.source} ${r.digest}` };
      }),
    );
}
