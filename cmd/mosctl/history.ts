import type { Command } from 'commander';
import type { HistoryEntry } from '../../src/machine/index.js';
import { short, table, when } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { withClient } from './remote.js';

/** `mosctl history`. */
export function register(program: Command): void {
  program
    .command('history')
    .description('list the generations of the system, oldest first')
    .action(
      action(async (ctx) => {
        const remote = ctx.globals.remote;
        // The same document as GET /v1/generations: { generations: [...] }, oldest first.
        const result = remote
          ? await withClient(remote, (c) => c.call<{ generations: HistoryEntry[] }>('GET', '/v1/generations'))
          : { generations: await (await machine()).history({ root: ctx.globals.root }) };
        return { result, text: historyText(result.generations) };
      }, { remote: true }),
    );
}

function historyText(h: readonly HistoryEntry[]): string {
  return table(
    ['GEN', 'COMMIT', 'TIME', 'BOOT', 'MESSAGE', 'TARGETS'],
    h.map((e) => [
      `${e.number}${e.current ? '*' : ''}${e.pinned ? ' pinned' : ''}`,
      e.commit.slice(0, 12),
      when(e.time),
      bootCell(e.boot),
      e.message,
      e.problem !== undefined ? `(unreadable: ${e.problem})` : e.targets.map((t) => `${t.name}@${short(t.digest)}`).join(' '),
    ]),
  );
}

/** good, failed (the check that failed), or the trial's state with the tries used: `trying 1/2`. */
function bootCell(b: HistoryEntry['boot']): string {
  if (b === undefined) return '-';
  if (b.state === 'failed') return b.check ? `failed (${b.check})` : 'failed';
  return b.triesUsed !== undefined ? `${b.state} ${b.triesUsed}/${b.tries}` : b.state;
}
