import { silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { commitGeneration, currentGeneration, lockConfig, readGeneration } from '../config/index.js';
import { parseInstallManifest } from '../manifest/index.js';
import { allocateIdmaps, idmapDefaults } from '../runtime/index.js';
import type { RegistryAccess } from '../oci/index.js';
import { fetchInstall } from './fetch-install.js';
import { pass } from './install.js';
import { planUpdate, type UpdatePlan } from './plan-update.js';
import { pullTargets } from './pull-targets.js';
import { loadSystem } from './load-system.js';
import { generationFiles, tripleNames, tripleOf } from './sys-files.js';
import { installVerifier, loadAnchors } from './trust-policy.js';

export interface UpdateOptions extends RegistryAccess {
  readonly root: string;
  readonly source: string;
  readonly capath?: string;
  readonly allowDowngrade?: boolean;
  /** Show the plan; fetch and verify, but write nothing (no images, no commit). */
  readonly dryRun?: boolean;
  readonly wait?: boolean;
  readonly now?: Date;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

export interface UpdateResult extends Omit<UpdatePlan, 'entries' | 'storage'> {
  readonly dryRun: boolean;
  /** The generation now current (unchanged for a no-op or a dry run). */
  readonly generation: number;
  readonly commit: string;
  readonly manifest: string;
  readonly blobBytes: number;
}

/**
 * `mosctl update`: under the writer lock, verify the current system, fetch and verify the new install
 * manifest, plan the merge (product, downgrade and validation checks), copy the new images, and commit
 * a new generation. The commit is the switch: a crash before it leaves the old generation current.
 */
export async function update(opts: UpdateOptions): Promise<UpdateResult> {
  const log = opts.log ?? silentLogger;
  const now = opts.now ?? new Date();
  await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  await using _lock = await lockConfig(opts.root, { wait: opts.wait ?? false, ...(opts.log ? { log: opts.log } : {}) });
  const anchors = await loadAnchors(opts.root, opts.capath);
  const head = await readGeneration({ root: opts.root });
  const current = await loadSystem(head, { verify: installVerifier(anchors, now) });
  opts.onProgress?.({ kind: 'step', step: 'fetch', detail: opts.source });
  const fetched = await fetchInstall({ ...opts, anchors, now, log });
  const incoming = parseInstallManifest(fetched.raw, 'install.json');
  const plan = planUpdate(current, incoming, { allowDowngrade: opts.allowDowngrade ?? false });
  const { entries, storage, ...summary } = plan;
  const base = { ...summary, manifest: incoming.sha, generation: head.number, commit: head.oid, blobBytes: 0 };
  if (opts.dryRun || plan.noop) return { ...base, dryRun: opts.dryRun ?? false };

  opts.onProgress?.({ kind: 'step', step: 'pull' });
  const newTargets = entries.filter((e) => e.sha === incoming.sha).map((e) => e.target);
  const pulled = await pullTargets({ root: opts.root, targets: newTargets, fetched, ...pass(opts), log });

  const triples = new Map([tripleOf(incoming, fetched.signature, fetched.cert)]);
  for (const e of entries) {
    if (triples.has(e.sha)) continue;
    const n = tripleNames(e.sha);
    triples.set(e.sha, { raw: head.files.get(n.json)!, signature: head.files.get(n.signed)!, cert: head.files.get(n.pem)! });
  }
  const groups = entries.map((e) => e.target.nsgroup).concat(storage.map((s) => s.nsgroup));
  const files = generationFiles({
    targets: entries.map((e) => ({ name: e.target.service_name, sha: e.sha })),
    uidmaps: allocateIdmaps(groups, current.sys.uidmaps ?? [], await idmapDefaults()),
    storage,
    triples,
    extra: { DefaultNic: current.sys.DefaultNic ?? '', UsedPorts: current.sys.UsedPorts ?? {}, IpAddrs: current.sys.IpAddrs ?? {} },
  });
  opts.onProgress?.({ kind: 'step', step: 'commit' });
  const { oid, number } = await commitGeneration({ root: opts.root, files, message: updateMessage(incoming.value.product, incoming.sha, plan), now, parent: head.oid, log });
  return { ...base, dryRun: false, generation: number, commit: oid, blobBytes: pulled.blobBytes };
}

function updateMessage(product: string, sha: string, plan: UpdatePlan): string {
  const parts = [
    plan.added.length ? `added ${plan.added.join(', ')}` : '',
    plan.changed.length ? `changed ${plan.changed.map((c) => `${c.name} ${c.from} -> ${c.to}`).join(', ')}` : '',
    plan.removed.length ? `removed ${plan.removed.join(', ')}` : '',
  ].filter(Boolean);
  return `Update ${product} to ${sha.slice(0, 12)}${parts.length ? ': ' + parts.join('; ') : ''}`;
}
