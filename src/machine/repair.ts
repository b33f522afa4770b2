import { chmod, rm } from 'node:fs/promises';
import { isMosError, silentLogger, type Digest, type Logger } from '../base/index.js';
import { currentGeneration, lockConfig, readGeneration } from '../config/index.js';
import { fsck, parseImageManifest, type RegistryAccess } from '../oci/index.js';
import { fetchInstall } from './fetch-install.js';
import { loadSystem } from './load-system.js';
import { measurePull, pullTargets } from './pull-targets.js';
import { incompleteImages, openExistingStore, openStore, targetDescriptor } from './store.js';
import { readManifestSources, readTracked } from './tracked.js';
import { installVerifier, loadAnchors } from './trust-policy.js';
import { parseInstallManifest, type InstallTarget } from '../manifest/index.js';

export interface RepairOptions extends RegistryAccess {
  readonly root: string;
  /** Fetch from here instead of where each manifest came from (a mirror, a USB stick). */
  readonly source?: string;
  readonly capath?: string;
  /** Say what would be removed and fetched (each source is still checked); remove and fetch nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
}

export interface RepairResult {
  /** Blobs that did not hash to their name, removed. */
  readonly removedCorrupt: readonly Digest[];
  /** Targets whose image was made complete again, and from where. */
  readonly repaired: readonly { readonly target: string; readonly source: string }[];
  /** Targets that could not be repaired, and why. */
  readonly unrepaired: readonly { readonly target: string; readonly reason: string }[];
  readonly blobBytes: number;
  /** A dry run: `removedCorrupt` and `repaired` say what would be removed and fetched, `blobBytes` how much. */
  readonly dryRun?: true;
}

/**
 * `mosctl fsck --repair`: under the writer lock, removes corrupt blobs, then fetches again, verified,
 * the images of the current generation that are not complete in the store, each from the source its
 * install manifest was fetched from (recorded by install and update) or from `source`. A source is
 * used only if it still names the very manifest (same sha) that defines the target.
 */
export async function repairStore(opts: RepairOptions): Promise<RepairResult> {
  const log = opts.log ?? silentLogger;
  const now = opts.now ?? new Date();
  await currentGeneration({ root: opts.root }); // CONFIG_NOT_INSTALLED before the lock creates config/
  await using _lock = opts.dryRun ? undefined : await lockConfig(opts.root, { log });
  const existing = await openExistingStore(opts.root, log);
  const store = existing ?? (opts.dryRun ? undefined : await openStore(opts.root, log));
  if (!store) return { removedCorrupt: [], repaired: [], unrepaired: [{ target: '*', reason: 'the image store is missing: run mosctl update again with the same source' }], blobBytes: 0, dryRun: true };
  const check = await fsck(store, { log, clean: !opts.dryRun });
  for (const d of opts.dryRun ? [] : check.corrupt) {
    const p = store.blobPath(d);
    await chmod(p, 0o600).catch(() => {});
    await rm(p, { force: true });
    log.warn(`removed corrupt blob ${d}`);
  }
  const anchors = await loadAnchors(opts.root, opts.capath);
  const sys = await loadSystem(await readGeneration({ root: opts.root }), { verify: installVerifier(anchors, now) });
  const broken = new Set((await incompleteImages(store, sys.targets.map((t) => t.target), new Set(check.corrupt))).map((t) => t.service_name));
  const bySha = new Map<string, InstallTarget[]>();
  for (const t of sys.targets) if (broken.has(t.target.service_name)) bySha.set(t.manifest.sha, [...(bySha.get(t.manifest.sha) ?? []), t.target]);
  const recorded = await readManifestSources(opts.root);
  const tracked = await readTracked(opts.root);
  const repaired: { target: string; source: string }[] = [];
  const unrepaired: { target: string; reason: string }[] = [];
  let blobBytes = 0;
  for (const [sha, targets] of bySha) {
    const source = opts.source ?? recorded[sha] ?? (tracked?.manifest === sha ? tracked.source : undefined);
    const fail = (reason: string) => unrepaired.push(...targets.map((t) => ({ target: t.service_name, reason })));
    if (!source) {
      fail(`no source is recorded for install manifest ${sha.slice(0, 12)}: pass --source`);
      continue;
    }
    try {
      const fetched = await fetchInstall({ ...opts, source, anchors, now, log });
      const got = parseInstallManifest(fetched.raw, 'install.json').sha;
      if (got !== sha) {
        fail(`${source} now names install manifest ${got.slice(0, 12)}, not ${sha.slice(0, 12)}`);
        continue;
      }
      if (opts.dryRun) {
        const corrupt = new Set<string>(check.corrupt);
        const needs = await measurePull({ root: opts.root, targets, fetched, force: true, log });
        // A corrupt blob is present now, but the real run removes it first and fetches it again.
        blobBytes += needs.reduce((n, x) => n + x.bytes, 0);
        for (const t of targets) {
          const desc = targetDescriptor(t);
          if (corrupt.has(desc.digest)) blobBytes += desc.size;
          // The image manifest as the source serves it (checked against the signed digest).
          const img = parseImageManifest(await fetched.imageSource(t.digest).store.fetchBytes(desc), `target ${t.service_name}`);
          for (const d of [img.config, ...img.layers]) if (corrupt.has(d.digest)) blobBytes += d.size;
        }
        repaired.push(...targets.map((t) => ({ target: t.service_name, source })));
        continue;
      }
      const r = await pullTargets({ root: opts.root, targets, fetched, force: true, log });
      blobBytes += r.blobBytes;
      repaired.push(...targets.map((t) => ({ target: t.service_name, source })));
    } catch (e) {
      if (!isMosError(e)) throw e;
      fail(`${e.subject ? e.subject + ': ' : ''}${e.message}`);
    }
  }
  return { removedCorrupt: check.corrupt, repaired, unrepaired, blobBytes, ...(opts.dryRun ? { dryRun: true as const } : {}) };
}
