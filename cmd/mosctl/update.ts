import { Option, type Command } from 'commander';
import type { OperationMode, OperationUpdateResult, Plan } from '../../src/machine/index.js';
import { table } from '../shared/format.js';
import { wholeNumber } from '../shared/flags.js';
import { MosError } from '../../src/base/index.js';
import { action } from '../shared/run.js';
import { sourceAccess, sourceOptions, type SourceFlags } from './install.js';
import { machine } from './load.js';
import { remoteOperation, withClient } from './remote.js';

type UpdateFlags = SourceFlags & { allowDowngrade: boolean; dryRun: boolean; mode: OperationMode; retryFailed: boolean; tries?: string };

/** `mosctl update SOURCE [--mode download|stage|apply]`. */
export function register(program: Command): void {
  sourceOptions(program.command('update').argument('<source>', 'install manifest reference'))
    .description('verify and apply an update (partial: named targets; complete: all), as a new generation')
    .option('--allow-downgrade', 'accept an older version of a target', false)
    .option('--dry-run', 'show what would change and what must be fetched; write nothing', false)
    .option('--retry-failed', 'apply an install manifest that failed its boot assessment before', false)
    .option('--tries <n>', 'boots the new generation may take to become good before it falls back (default 2)')
    .addOption(
      new Option('--mode <mode>', 'download: fetch and verify only; stage: also commit the generation (next boot); apply: also restart live targets')
        .choices(['download', 'stage', 'apply'])
        .default('stage'),
    )
    .action(
      action(async (ctx, source: string, o: UpdateFlags) => {
        const remote = ctx.globals.remote;
        const tries = o.tries !== undefined ? { tries: wholeNumber(o.tries, '--tries', 1, 10) } : {};
        if (remote && (o.retryFailed || o.tries !== undefined)) throw new MosError({ code: 'USAGE', subject: o.retryFailed ? '--retry-failed' : '--tries', message: 'is not available with --server' });
        let r: OperationUpdateResult & { dryRun: boolean };
        if (remote && o.dryRun) {
          const plan = await withClient(remote, (c) => c.call<Plan>('POST', '/v1/plans', { source, allowDowngrade: o.allowDowngrade }));
          r = { ...plan, dryRun: true, mode: o.mode, blobBytes: 0, repaired: [] };
        } else if (remote) {
          // A fresh key per invocation: a retried POST (lost answer) cannot start a second update.
          r = await remoteOperation(ctx, remote, '/v1/operations', { source, mode: o.mode, allowDowngrade: o.allowDowngrade }, { 'idempotency-key': globalThis.crypto.randomUUID() });
        } else {
          r = await (await machine()).performUpdate({ root: ctx.globals.root, source, ...sourceAccess(o), allowDowngrade: o.allowDowngrade, retryFailed: o.retryFailed, ...tries, dryRun: o.dryRun, mode: o.mode, log: ctx.log, onProgress: ctx.onProgress, signal: ctx.signal });
        }
        return { result: r, text: updateText(r) };
      }, { remote: true }),
    );
}

/** CHANGE, TARGET, VERSION rows of an update or upgrade result. */
export function changeRows(r: Pick<OperationUpdateResult, 'added' | 'changed' | 'removed'>): string[][] {
  return [
    ...r.added.map((a) => ['added', a.name, a.version]),
    ...r.changed.map((c) => ['changed', c.name, `${c.from} -> ${c.to}`]),
    ...r.removed.map((a) => ['removed', a.name, a.version]),
  ];
}

export function updateText(r: OperationUpdateResult & { dryRun: boolean }): string {
  if (r.noop && r.mode !== 'download') {
    const repaired = r.repaired?.length ? `; fetched the incomplete images of ${r.repaired.join(', ')} again (${r.blobBytes} bytes)` : '';
    return `already up to date (generation ${r.generation})${repaired}`;
  }
  const rows = changeRows(r);
  const head = r.dryRun
    ? `would update (dry run; nothing written): ${r.bytesToFetch} bytes to fetch, ${r.checks.diskSpace.free} free`
    : r.mode === 'download'
      ? `downloaded ${r.blobBytes} blob bytes for manifest ${r.manifest.slice(0, 12)}; nothing committed (generation ${r.generation} stays current)`
      : `updated to generation ${r.generation} (${r.commit.slice(0, 12)}); fetched ${r.blobBytes} blob bytes`;
  const out = [head, rows.length ? table(['CHANGE', 'TARGET', 'VERSION'], rows) : `no target changes: the same images, now from manifest ${r.manifest.slice(0, 12)}`];
  if (!r.dryRun) out.push(...nextSteps(r));
  return out.join('\n');
}

/** What the operator does next, so nobody has to guess whether the change is live. */
function nextSteps(r: OperationUpdateResult): string[] {
  if (r.mode === 'download') return ['next: mosctl update --mode stage (or apply) with the same source fetches nothing more'];
  const lines: string[] = [];
  if (r.live) {
    if (r.live.restarted.length) lines.push(`restarted: ${r.live.restarted.join(', ')}`);
    if (r.live.stopped.length) lines.push(`stopped: ${r.live.stopped.join(', ')}`);
    for (const f of r.live.failed) lines.push(`failed to restart ${f.name}: ${f.message} (${f.code})`);
  } else if (r.added.length + r.changed.length + r.removed.length > 0) {
    lines.push('next: running targets still run their old images; mosctl activate -t TARGET (or --mode apply) switches them');
  }
  if (r.rebootRequired) lines.push('reboot required: the hostfs target changed and takes effect at the next boot');
  lines.push(`boot assessment: generation ${r.generation} is pending; it becomes good after a healthy boot (mosctl assess), and falls back after its tries`);
  return lines;
}
