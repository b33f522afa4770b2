import { MosError, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { createConfigRepo, lockConfig } from '../config/index.js';
import { recordInstalled } from './assessment.js';
import { recordManifestSource, writeTracked } from './tracked.js';
import { exists, refuseOutwardSymlinks } from '../host/index.js';
import { parseInstallManifest, type InstallManifest } from '../manifest/index.js';
import { allocateIdmaps, idmapDefaults } from '../runtime/index.js';
import type { RegistryAccess } from '../oci/index.js';
import { CONFINED_DIRS, systemPaths } from './paths.js';
import { fetchInstall } from './fetch-install.js';
import { measurePull, pullTargets } from './pull-targets.js';
import { generationFiles, tripleOf } from './sys-files.js';
import { loadAnchors } from './trust-policy.js';

export interface InstallOptions extends RegistryAccess {
  readonly root: string;
  /** `[docker://]host[:port]/name:tag`, `host/name@sha256:…`, or `oci:DIR:TAG` (live CD). */
  readonly source: string;
  /** Manifest CA bundle; default `<root>/factory/secure/manifestCA.pem`. */
  readonly capath?: string;
  /** Verify, validate and measure what would be fetched; write nothing (no store, no config). */
  readonly dryRun?: boolean;
  /** Wait for a busy config lock instead of failing. */
  readonly wait?: boolean;
  /** Boot tries every later generation gets before it falls back (default 2). */
  readonly tries?: number;
  readonly now?: Date;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

export interface InstallResult {
  readonly generation: number;
  readonly commit: string;
  readonly product: string;
  readonly manifest: string;
  readonly signer: string;
  readonly targets: readonly { readonly name: string; readonly digest: string; readonly version: string }[];
  readonly blobBytes: number;
  /** A dry run: verified and measured, nothing written (generation 0, no commit). */
  readonly dryRun: boolean;
  /** Bytes the store lacked for this manifest when it was checked. */
  readonly bytesToFetch: number;
}

/**
 * `mosctl install`: fetch the install manifest and its certificate and signature, verify them against
 * the manifest CA, validate it (complete manifests only), copy and verify every target image into the
 * store, and only then create `config/manifest.git` (built aside and renamed). A failure at any point
 * leaves no `config/manifest.git`, so a retry simply works.
 */
export async function install(opts: InstallOptions): Promise<InstallResult> {
  const log = opts.log ?? silentLogger;
  await refuseOutwardSymlinks(opts.root, CONFINED_DIRS);
  const { repoDir } = systemPaths(opts.root);
  if (await exists(repoDir)) {
    throw new MosError({ code: 'CONFIG_EXISTS', subject: repoDir, message: 'a system is already installed here', hint: 'use mosctl update SOURCE' });
  }
  const anchors = await loadAnchors(opts.root, opts.capath);
  const now = opts.now ?? new Date();
  opts.onProgress?.({ kind: 'step', step: 'fetch', detail: opts.source });
  const fetched = await fetchInstall({ ...opts, anchors, now, log });
  log.info(`install manifest signed by ${fetched.signer.subject}`);
  const manifest: InstallManifest = parseInstallManifest(fetched.raw, 'install.json');
  if (manifest.value.update_type !== 'complete') {
    throw new MosError({
      code: 'SYSTEM_PARTIAL_INSTALL',
      subject: `${opts.source}: install.json: update_type`,
      message: `cannot install a "${manifest.value.update_type || 'partial'}" manifest`,
      hint: 'install a complete manifest; partial manifests are for mosctl update',
    });
  }
  const summary = {
    product: manifest.value.product,
    manifest: manifest.sha,
    signer: fetched.signer.subject,
    targets: manifest.value.targets.map((t) => ({ name: t.service_name, digest: t.digest, version: t.version })),
  };
  if (opts.dryRun) {
    const needs = await measurePull({ root: opts.root, targets: manifest.value.targets, fetched, ...(opts.signal ? { signal: opts.signal } : {}), log });
    return { ...summary, generation: 0, commit: '', blobBytes: 0, dryRun: true, bytesToFetch: needs.reduce((n, x) => n + x.bytes, 0) };
  }
  opts.onProgress?.({ kind: 'step', step: 'pull', detail: `${manifest.value.targets.length} targets` });
  const pulled = await pullTargets({ root: opts.root, targets: manifest.value.targets, fetched, ...pass(opts), log });

  const groups = manifest.value.targets.map((t) => t.nsgroup).concat((manifest.value.storage ?? []).map((s) => s.nsgroup));
  const files = generationFiles({
    targets: manifest.value.targets.map((t) => ({ name: t.service_name, sha: manifest.sha })),
    uidmaps: allocateIdmaps(groups, [], await idmapDefaults()),
    storage: manifest.value.storage ?? [],
    triples: new Map([tripleOf(manifest, fetched.signature, fetched.cert)]),
  });
  // The lock is taken only now: everything above wrote nothing under config/. Whoever wins the lock
  // first installs; the other finds the repository and stops with CONFIG_EXISTS.
  opts.onProgress?.({ kind: 'step', step: 'commit' });
  await using _lock = await lockConfig(opts.root, { wait: opts.wait ?? false, ...(opts.log ? { log: opts.log } : {}) });
  const { oid } = await createConfigRepo({ root: opts.root, files, message: `Install ${manifest.value.product} (${manifest.sha.slice(0, 12)})`, now, log });
  await recordInstalled(opts.root, { generation: 1, commit: oid }, { now, ...(opts.tries !== undefined ? { tries: opts.tries } : {}) });
  await writeTracked(opts.root, { source: opts.source, manifest: manifest.sha, time: now.toISOString() });
  await recordManifestSource(opts.root, manifest.sha, opts.source);
  return { ...summary, generation: 1, commit: oid, blobBytes: pulled.blobBytes, dryRun: false, bytesToFetch: pulled.blobBytes };
}

/** The transfer options a system operation passes down. */
export function pass(opts: { signal?: AbortSignal; onProgress?: OnProgress }): { signal?: AbortSignal; onProgress?: OnProgress } {
  return { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
}
