import type { Command } from 'commander';
import type { HistoryEntry, LiveStatus } from '../../src/system/index.js';
import { action } from '../common.js';
import { short, table, when } from '../format.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const system = () => import('../../src/system/index.js');

/** Adds this area's mosctl subcommands: `status`, `history`. */
export function registerMosctl(program: Command): void {
  program
    .command('status')
    .description('show the current generation, its product and targets')
    .option('--generation <ref>', 'show another generation: number or commit id')
    .action(
      action(async (ctx, o: { generation?: string }) => {
        const ref = o.generation === undefined ? undefined : /^[0-9]{1,6}$/.test(o.generation) ? Number(o.generation) : o.generation;
        const result = await (await system()).withRuntime(ctx.globals.root, await (await system()).status({ root: ctx.globals.root, ...(ref !== undefined ? { ref } : {}) }));
        return { result, text: statusText(result) };
      }),
    );
  program
    .command('history')
    .description('list the generations of the system, oldest first')
    .action(
      action(async (ctx) => {
        const result = await (await system()).history({ root: ctx.globals.root });
        return { result, text: historyText(result) };
      }),
    );
}

/** Adds this area's mosb subcommands. */
export function registerMosb(_program: Command): void {}

function statusText(s: LiveStatus): string {
  const live = new Map(s.runtime.map((r) => [r.name, r.state ?? (r.mounted ? 'MOUNTED' : '-')]));
  const g = s.generation;
  const out = [
    `generation ${g.number}  ${g.oid.slice(0, 12)}  ${when(g.time)}  ${g.message}`,
    `product    ${s.product}`,
    `update     ${s.update_type || 'partial'}`,
    '',
    table(
      ['TARGET', 'TYPE', 'VERSION', 'DIGEST', 'SIZE', 'NSGROUP', 'NETWORK', 'STATE'],
      s.targets.map((t) => [t.name, t.service_type, t.version, short(t.digest), String(t.size), t.nsgroup || '-', t.network, live.get(t.name) ?? '-']),
    ),
  ];
  if (s.storage.length > 0) {
    out.push('', table(['STORAGE', 'SIZE(MiB)', 'PERSISTENT', 'NSGROUP'], s.storage.map((v) => [v.label, String(v.size), v.persistent ? 'yes' : 'no', v.nsgroup || '-'])));
  }
  return out.join('\n');
}

function historyText(h: readonly HistoryEntry[]): string {
  return table(
    ['GEN', 'COMMIT', 'TIME', 'MESSAGE', 'TARGETS'],
    h.map((e) => [
      `${e.number}${e.current ? '*' : ''}`,
      e.oid.slice(0, 12),
      when(e.time),
      e.message,
      e.problem !== undefined ? `(unreadable: ${e.problem})` : e.targets.map((t) => `${t.name}@${short(t.digest)}`).join(' '),
    ]),
  );
}
