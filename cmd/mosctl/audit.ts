import type { Command } from 'commander';
import type { AuditEntry } from '../../src/machine/index.js';
import { wholeNumber } from '../shared/flags.js';
import { table, when } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { withClient } from './remote.js';

type Entry = AuditEntry & { readonly n: number };

/** `mosctl audit [--after N]`: the upgrade API's audit log. */
export function register(program: Command): void {
  program
    .command('audit')
    .description("show the upgrade API's audit log (config/audit.jsonl): who changed what, when, with what result")
    .option('--after <n>', 'only entries after line N', '0')
    .action(
      action(async (ctx, o: { after: string }) => {
        const after = wholeNumber(o.after, '--after', 0, Number.MAX_SAFE_INTEGER);
        const remote = ctx.globals.remote;
        const entries = remote
          ? (await withClient(remote, (c) => c.call<{ entries: Entry[] }>('GET', `/v1/audit?after=${after}`))).entries
          : await (await machine()).readAudit(ctx.globals.root, { after });
        const text = table(
          ['#', 'TIME', 'ROLE', 'CLIENT', 'ACTION', 'STATUS', 'OPERATION'],
          entries.map((e) => [String(e.n), when(e.time), e.role, e.subject, e.action, e.error ? `${e.status} ${e.error}` : String(e.status), e.operation ?? '-']),
        );
        return { result: entries, text: entries.length ? text : 'no audit entries' };
      }, { remote: true }),
    );
}
