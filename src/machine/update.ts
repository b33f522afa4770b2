import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MosError, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { commitGeneration, currentGeneration, lockConfig, readGeneration } from '../config/index.js';
import { checkIncoming, recordNewGeneration } from './assessment.js';
import { compareVersions, parseInstallManifest, type InstallManifest } from '../manifest/index.js';
import { allocateIdmaps, idmapDefaults } from '../runtime/index.js';
import type { RegistryAccess } from '../oci/index.js';
import { fetchInstall } from './fetch-install.js';
import { pass } from './install.js';
import { planUpdate, type UpdatePlan } from './plan-update.js';
import { measurePull, pullTargets, type PullNeed } from './pull-targets.js';
import { loadSystem } from './load-system.js';
import { CONFINED_DIRS, systemPaths } from './paths.js';
import { refuseOutwardSymlinks } from '../host/index.js';
import { recordManifestSource, writeTracked } from './tracked.js';
import { incompleteImages, openStore } from './store.js';
import { generationFiles, tripleNames, tripleOf } from './sys-files.js';
import { installVerifier, loadAnchors } from './trust-policy.js';

/**
 * How far an update goes. `download` fetches and verifies the new images into the store and commits
 * nothing (pull before the maintenance window); `stage` also commits the new generation, which the next
 * boot (or `activate`) uses. Running targets are never touched here (see applyLive).
 */
export type UpdateMode = 'download' | 'stage';

/** Phases an update passes, reported through `onPhase` (the upgrade API persists them). */
export type UpdatePhase = 'verifying' | 'downloading' | 'applying';

export interface UpdateOptions extends RegistryAccess {
  readonly root: string;
  readonly source: string;
  readonly capath?: string;
  readonly allowDowngrade?: boolean;
  /** Show the plan; fetch and verify, but write nothing (no images, no commit, no lock). */
  readonly dryRun?: boolean;
  readonly mode?: UpdateMode;
  /** Refuse unless the source names exactly this install manifest (`<sha>` of install.json, or sha256:<sha>). */
  readonly requireManifestDigest?: string;
  /**
   * Record SOURCE as the tracked source (`mosctl switch`); a complete update records it anyway, a
   * partial one (an add-on) leaves the tracked source as it was.
   */
  readonly track?: boolean;
  /** Called with the plan before anything is fetched or written; throwing refuses the update (roles). */
  readonly authorize?: (plan: UpdatePlan, incoming: InstallManifest, touched: { readonly hostfs: readonly string[] }) => void;
  /**
   * Called as the update enters a phase. `applying` is the commit point: once it is reported the
   * update no longer honours `signal`; before it, an abort leaves the old generation current.
   */
  readonly onPhase?: (phase: UpdatePhase, detail?: { readonly needs: readonly PullNeed[]; readonly manifest: string }) => void;
  readonly wait?: boolean;
  /** Apply an install manifest that already failed its boot assessment and fell back. */
  readonly retryFailed?: boolean;
  /** Boot tries the new generation gets (default: the machine's, 2). */
  readonly tries?: number;
  readonly now?: Date;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** Checks an update passed before anything was written (a plan shows them). */
export interface UpdateChecks {
  /** The install manifest's signature and certificate path verified against the manifest CA. */
  readonly signature: 'ok';
  readonly product: 'ok';
  /** `allowed`: an older version is installed on purpose (--allow-downgrade). */
  readonly downgrade: 'ok' | 'allowed';
  readonly diskSpace: { readonly ok: boolean; readonly needed: number; readonly free: number };
}

export interface UpdateResult extends Omit<UpdatePlan, 'entries' | 'storage'> {
  readonly dryRun: boolean;
  readonly mode: UpdateMode;
  /** The generation now current (unchanged for a no-op, a dry run or a download). */
  readonly generation: number;
  readonly commit: string;
  /** `<sha>` of the incoming install.json. */
  readonly manifest: string;
  /** Bytes fetched into the store (0 for a dry run). */
  readonly blobBytes: number;
  /** Bytes the store lacked when the update was planned, per target. */
  readonly bytesToFetch: number;
  readonly fetch: readonly PullNeed[];
  readonly checks: UpdateChecks;
  /** The hostfs target changes: the new generation takes effect only at the next boot. */
  readonly rebootRequired: boolean;
  /** Targets of an unchanged system whose images were incomplete in the store and were fetched again. */
  readonly repaired: readonly string[];
}

/**
 * `mosctl update`: under the writer lock, verify the current system, fetch and verify the new install
 * manifest, plan the merge (product, downgrade and validation checks), measure what must be fetched and
 * check the disk has room, copy the new images, and commit a new generation. The commit is the switch:
 * a crash or an abort before it leaves the old generation current.
 */
export async function update(opts: UpdateOptions): Promise<UpdateResult> {
  const log = opts.log ?? silentLogger;
  const now = opts.now ?? new Date();
  const mode = opts.mode ?? 'stage';
  await refuseOutwardSymlinks(opts.root, CONFINED_DIRS);
  await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  // A dry run reads only (HEAD is read once, atomically), so it neither takes nor waits for the lock.
  await using _lock = opts.dryRun ? undefined : await lockConfig(opts.root, { wait: opts.wait ?? false, ...(opts.log ? { log: opts.log } : {}) });
  opts.onPhase?.('verifying');
  const anchors = await loadAnchors(opts.root, opts.capath);
  const head = await readGeneration({ root: opts.root });
  const current = await loadSystem(head, { verify: installVerifier(anchors, now) });
  opts.onProgress?.({ kind: 'step', step: 'fetch', detail: opts.source });
  const fetched = await fetchInstall({ ...opts, anchors, now, log });
  const incoming = parseInstallManifest(fetched.raw, 'install.json');
  const required = opts.requireManifestDigest?.replace(/^sha256:/, '');
  if (required !== undefined && required !== incoming.sha) {
    throw new MosError({
      code: 'SYSTEM_MANIFEST_CHANGED',
      subject: opts.source,
      message: `names install manifest ${incoming.sha.slice(0, 12)}, not the required ${required.slice(0, 12)}`,
      hint: 'the tag moved since the plan was made: plan again',
    });
  }
  // Boot assessment: a damaged record or an install manifest that already fell back refuses the update here.
  const bootState = await checkIncoming(opts.root, incoming.sha, opts.retryFailed ?? false);
  const plan = planUpdate(current, incoming, { allowDowngrade: opts.allowDowngrade ?? false });
  const { entries, storage, ...summary } = plan;
  const newTargets = entries.filter((e) => e.sha === incoming.sha).map((e) => e.target);
  const hostfsNames = new Set([...current.targets.map((t) => t.target), ...newTargets].filter((t) => t.service_type === 'hostfs').map((t) => t.service_name));
  const hostfsTouched = [...plan.added, ...plan.removed, ...plan.changed].map((c) => c.name).filter((n) => hostfsNames.has(n));
  opts.authorize?.(plan, incoming, { hostfs: hostfsTouched });
  const needs = plan.noop && mode === 'stage' ? [] : (await measurePull({ root: opts.root, targets: newTargets, fetched, ...pass(opts), log })).filter((n) => n.bytes > 0);
  const bytesToFetch = needs.reduce((n, x) => n + x.bytes, 0);
  const free = await freeBytes(systemPaths(opts.root).store);
  const checks: UpdateChecks = {
    signature: 'ok',
    product: 'ok',
    downgrade: opts.allowDowngrade && plan.changed.some((c) => compareVersions(c.to, c.from) < 0) ? 'allowed' : 'ok',
    diskSpace: { ok: free >= bytesToFetch, needed: bytesToFetch, free },
  };
  const rebootRequired = hostfsTouched.length > 0;
  const base = { ...summary, mode, manifest: incoming.sha, generation: head.number, commit: head.oid, blobBytes: 0, bytesToFetch, fetch: needs, checks, rebootRequired, repaired: [] as string[] };
  const track = async (): Promise<void> => {
    await recordManifestSource(opts.root, incoming.sha, opts.source);
    if (opts.track || incoming.value.update_type === 'complete') await writeTracked(opts.root, { source: opts.source, manifest: incoming.sha, time: now.toISOString() });
  };
  if (opts.dryRun) return { ...base, dryRun: true };
  if (plan.noop && mode === 'stage') {
    // Nothing to commit; but "up to date" must also mean "every image is here": a blob removed or
    // found corrupt (fsck) is fetched again from this source, verified, and the answer says so.
    const missing = await incompleteImages(await openStore(opts.root), newTargets);
    if (missing.length === 0) {
      await track();
      return { ...base, dryRun: false };
    }
    log.info(`re-fetching the images of ${missing.map((t) => t.service_name).join(', ')}: not complete in the store`);
    const pulled = await pullTargets({ root: opts.root, targets: missing, fetched, force: true, ...pass(opts), log });
    await track();
    return { ...base, dryRun: false, blobBytes: pulled.blobBytes, repaired: missing.map((t) => t.service_name) };
  }
  if (!checks.diskSpace.ok) {
    throw new MosError({
      code: 'HOST_NO_SPACE',
      subject: systemPaths(opts.root).store,
      message: `the update needs ${bytesToFetch} bytes, but only ${free} are free`,
      hint: 'free space (mosctl gc) and try again',
    });
  }

  opts.signal?.throwIfAborted();
  opts.onPhase?.('downloading', { needs, manifest: incoming.sha });
  opts.onProgress?.({ kind: 'step', step: 'pull' });
  const pulled = await pullTargets({ root: opts.root, targets: newTargets, fetched, ...pass(opts), log });
  if (mode === 'download') return { ...base, dryRun: false, blobBytes: pulled.blobBytes };

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
  // The commit point: an abort seen here still leaves the old generation current; after it, none is honoured.
  opts.signal?.throwIfAborted();
  opts.onPhase?.('applying', { needs, manifest: incoming.sha });
  opts.onProgress?.({ kind: 'step', step: 'commit' });
  const { oid, number } = await commitGeneration({ root: opts.root, files, message: updateMessage(incoming.value.product, incoming.sha, plan), now, parent: head.oid, log });
  await recordNewGeneration(opts.root, { generation: number, commit: oid }, { generation: head.number, commit: head.oid }, {
    now,
    ...(opts.tries !== undefined ? { tries: opts.tries } : {}),
    ...(bootState?.failed.some((f) => f.manifest === incoming.sha) ? { retried: incoming.sha } : {}),
  });
  await track();
  return { ...base, dryRun: false, generation: number, commit: oid, blobBytes: pulled.blobBytes };
}

/** Free bytes on the file system that holds `dir` (or its nearest existing parent). */
async function freeBytes(dir: string): Promise<number> {
  for (let d = dir; ; d = dirname(d)) {
    try {
      const s = await statfs(d);
      return s.bavail * s.bsize;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || d === dirname(d)) throw new MosError({ code: 'HOST_IO', subject: d, message: 'cannot read free space', cause: e });
    }
  }
}

function updateMessage(product: string, sha: string, plan: UpdatePlan): string {
  const parts = [
    plan.added.length ? `added ${plan.added.map((a) => a.name).join(', ')}` : '',
    plan.changed.length ? `changed ${plan.changed.map((c) => `${c.name} ${c.from} -> ${c.to}`).join(', ')}` : '',
    plan.removed.length ? `removed ${plan.removed.map((a) => a.name).join(', ')}` : '',
  ].filter(Boolean);
  return `Update ${product} to ${sha.slice(0, 12)}${parts.length ? ': ' + parts.join('; ') : ''}`;
}
