import type { Command } from 'commander';
import { MosError } from '../../src/base/index.js';
import type { BootStatus, StatusModel } from '../../src/machine/index.js';
import { human, short, table, when } from '../shared/format.js';
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
  const state = new Map(s.status.targets.map((t) => [t.name, t]));
  const g = s.generation;
  const ptr = (p: { generation: number; commit: string }) => `generation ${p.generation}  ${p.commit.slice(0, 12)}`;
  const st = s.status;
  const out = [
    `generation ${g.number}  ${g.commit.slice(0, 12)}  ${when(g.time)}  ${g.message}`,
    `product    ${s.product}`,
    // The install manifests' update_type, worded so it cannot read as "an update completed".
    `manifests  ${s.update_type === 'complete' ? 'complete (every target from one manifest)' : s.update_type === 'mixed' ? 'mixed (complete and partial updates)' : 'partial updates'}`,
    ...(s.spec.source !== undefined ? [`tracking   ${s.spec.source}  (mosctl upgrade follows it)`] : []),
    ...(st.booted ? [`booted     ${ptr(st.booted)}`] : []),
    ...(st.staged ? [`staged     ${ptr(st.staged)}  (committed, boots next${st.rebootRequired ? ': reboot to run its hostfs' : ''})`] : []),
    ...(st.rollback ? [`rollback   ${ptr(st.rollback)}`] : []),
    '',
    table(
      ['TARGET', 'TYPE', 'VERSION', 'RUNNING', 'DIGEST', 'SIZE', 'STATE', 'NEXT'],
      s.targets.map((t) => {
        const x = state.get(t.name);
        const running = x?.running === undefined ? '-' : x.running.digest === t.digest ? (x.running.version ?? t.version) : (x.running.version ?? '?');
        return [t.name, t.service_type, t.version, running, short(t.digest), x?.imageBytes !== undefined ? human(x.imageBytes) : '-', live.get(t.name) ?? '-', nextStep(t.name, x?.apply)];
      }),
    ),
  ];
  if (s.boot !== undefined) out.push('', bootText(s.boot));
  if (s.storage.length > 0) {
    out.push('', table(['STORAGE', 'SIZE(MiB)', 'PERSISTENT', 'NSGROUP'], s.storage.map((v) => [v.label, String(v.size), v.persistent ? 'yes' : 'no', v.nsgroup || '-'])));
  }
  return out.join('\n');
}

/** The NEXT column: what makes a target run what is installed. */
function nextStep(name: string, apply: string | undefined): string {
  switch (apply) {
    case 'activate':
      return `activate -t ${name}`;
    case 'restart':
      return `activate -t ${name} (restarts)`;
    case 'reboot':
      return 'reboot';
    default:
      return '-';
  }
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
