import type { Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import type { BootStatus, StatusModel } from '../../src/machine/index.js';
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
  if (s.boot !== undefined) out.push('', bootText(s.boot));
  if (s.storage.length > 0) {
    out.push('', table(['STORAGE', 'SIZE(MiB)', 'PERSISTENT', 'NSGROUP'], s.storage.map((v) => [v.label, String(v.size), v.persistent ? 'yes' : 'no', v.nsgroup || '-'])));
  }
  return out.join('\n');
}

/** The boot-assessment lines of status, mark-good and mark-bad. */
export function bootText(b: BootStatus): string {
  const t = b.trial;
  const state =
    b.state === 'good' ? 'good'
    : b.state === 'unassessed' ? 'unassessed (no boot-assessment record: installed before it, or by Go mos)'
    : t !== undefined ? `${b.state}, ${t.tries - t.left} of ${t.tries} tries used${t.left === 0 ? ': the next boot falls back' : ''}`
    : `${b.state} (counted at the next boot)`;
  const out = [`boot       generation ${b.generation}: ${state}`];
  if (t?.lastFailure) out.push(`           last failure: ${t.lastFailure.check}: ${t.lastFailure.reason} (boot ${t.lastFailure.bootId.slice(0, 8)}, ${t.lastFailure.uptime.toFixed(0)} s after start)`);
  if (b.booted !== undefined && b.booted.commit !== b.commit) out.push(`           running generation ${b.booted.generation} (${b.booted.state}); generation ${b.generation} is staged: reboot to try it`);
  if (b.booted?.fallback) out.push(`           this boot fell back from generation ${b.booted.fallback.from}: ${b.booted.fallback.reason}`);
  if (b.good !== undefined && b.good.commit !== b.commit) out.push(`           good       generation ${b.good.generation} (a failed boot returns to it)`);
  for (const f of b.failed.slice(-5)) out.push(`           failed     install manifest ${f.manifest.slice(0, 12)} as generation ${f.generation}: ${f.check}: ${f.reason} (${when(f.time)})`);
  if (b.events.length > 0) {
    out.push('', table(['EVENT', 'GEN', 'TIME', 'UPTIME', 'DETAIL'], b.events.slice(-8).map((e) => [e.event, String(e.generation), when(e.time), `${e.uptime.toFixed(0)} s`, e.detail ?? ''])));
  }
  return out.join('\n');
}
