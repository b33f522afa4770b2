import type { Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import type { StatusModel } from '../../src/machine/index.js';
import { short, table, when } from '../shared/format.js';
import { action } from '../shared/run.js';
import { machine } from './load.js';
import { withClient } from './remote.js';

/** `mosctl status [--generation N|COMMIT]`. */
export function register(program: Command): void {
  program
    .command('status')
    .description('show the current generation, its product and targets')
    .option('--generation <ref>', 'show another generation: number or commit id')
    .action(
      action(async (ctx, o: { generation?: string }) => {
        const ref = o.generation === undefined ? undefined : /^[0-9]{1,6}$/.test(o.generation) ? Number(o.generation) : o.generation;
        const remote = ctx.globals.remote;
        if (remote && ref !== undefined) throw new MosError({ code: 'USAGE', subject: '--generation', message: 'is not available with --server; see mosctl --server … history' });
        const result = remote ? await withClient(remote, (c) => c.call<StatusModel>('GET', '/v1/status')) : await (await machine()).statusModel(ctx.globals.root, ref);
        return { result, text: statusText(result) };
      }, { remote: true }),
    );
}

function statusText(s: StatusModel): string {
  const live = new Map(s.runtime.map((r) => [r.name, r.state ?? (r.mounted ? 'MOUNTED' : '-')]));
  const g = s.generation;
  const out = [
    `generation ${g.number}  ${g.oid.slice(0, 12)}  ${when(g.time)}  ${g.message}`,
    `product    ${s.product}`,
    // The install manifests' update_type, worded so it cannot read as "an update completed".
    `manifests  ${s.update_type === 'complete' ? 'complete (every target from one manifest)' : s.update_type === 'mixed' ? 'mixed (complete and partial updates)' : 'partial updates'}`,
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
