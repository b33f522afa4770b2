import { isMosError, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { BOOTKIT_TARGET } from '../protocol/index.js';
import { exists } from '../host/index.js';
import { prepareVolumes, type VolumeResult } from '../runtime/index.js';
import { activate, type ActivateResult } from './activate.js';
import { espBundlePath, systemPaths } from './paths.js';
import { injectSiteBundle, readSiteState } from './site-bundle.js';
import { realRoot } from './target-root.js';
import { loadVerifiedSystem } from './trust-policy.js';

export interface BootOptions {
  readonly root: string;
  readonly capath?: string;
  readonly requireVerity?: boolean;
  /** Also write systemd units for container targets. */
  readonly systemd?: boolean;
  /** Verify, and say what would be set up and started; write, mount and start nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
}

/** One target's outcome at boot. */
export type BootTarget =
  | ({ readonly ok: true } & ActivateResult)
  | { readonly ok: false; readonly target: string; readonly error: { code: string; message: string; subject?: string; hint?: string } };

export interface BootResult {
  readonly generation: number;
  readonly volumes: readonly VolumeResult[];
  readonly targets: readonly BootTarget[];
  readonly failed: number;
  /** A dry run: volumes and targets say what boot would do. */
  readonly dryRun?: true;
}

/**
 * `mosctl boot`: verify the whole system, set up storage volumes (persistent ones kept, the others
 * fresh for this boot), then activate every target in manifest order except hostfs (the booted root)
 * and the bootkit.
 * A failing target is reported and the others still start; the caller exits non-zero when any failed.
 */
export async function boot(opts: BootOptions): Promise<BootResult> {
  const root = await realRoot(opts.root);
  const log = opts.log ?? silentLogger;
  const system = await loadVerifiedSystem(root, opts.capath, opts.now);
  if (!opts.dryRun) await siteBundleFoundLater(root, opts.capath, log);
  const volumes = await prepareVolumes({
    storageDir: systemPaths(root).storage,
    items: system.sys.storage ?? [],
    idmaps: system.sys.uidmaps ?? [],
    boot: true,
    ...(opts.dryRun ? { dryRun: true } : {}),
  });
  const targets: BootTarget[] = [];
  for (const { target } of system.targets) {
    // hostfs is the booted root; the bootkit is the boot chain the installer put on the ESP, not a
    // service (mos's ActivateAll skips both; `activate -t bootkit` still mounts it on request).
    if (target.service_type === 'hostfs' || target.service_name === BOOTKIT_TARGET) continue;
    opts.onProgress?.({ kind: 'step', step: 'activate', detail: target.service_name });
    try {
      const r = await activate({ root, target: target.service_name, system, log, ...(opts.requireVerity ? { requireVerity: true } : {}), ...(opts.systemd ? { systemd: true } : {}), ...(opts.dryRun ? { dryRun: true } : {}) });
      targets.push({ ok: true, ...r });
    } catch (e) {
      if (!isMosError(e)) throw e;
      log.warn(`target ${target.service_name} failed: ${e.message}`);
      targets.push({ ok: false, target: target.service_name, error: e.toJSON() });
    }
  }
  return { generation: system.generation.number, volumes, targets, failed: targets.filter((t) => !t.ok).length, ...(opts.dryRun ? { dryRun: true as const } : {}) };
}

/**
 * A machine booted without a bundle (e.g. not through mosctl's initrd) that finds one on its ESP now takes
 * it, as the initrd would have: only while uncommissioned, and never at the cost of the boot (a bad bundle
 * is a warning). Once a bundle is recorded, the initrd alone handles bundles at boot.
 */
async function siteBundleFoundLater(root: string, capath: string | undefined, log: Logger): Promise<void> {
  const candidate = espBundlePath(root);
  if ((await readSiteState(root)) || !(await exists(candidate))) return;
  try {
    const r = await injectSiteBundle({ root, ...(capath !== undefined ? { capath } : {}), candidates: [candidate], dest: root, log });
    if (r.bundle) log.info(`site bundle ${r.bundle.site} version ${r.bundle.version} accepted from ${candidate}`);
  } catch (e) {
    if (!isMosError(e)) throw e;
    log.warn(`site bundle ${candidate} not taken: ${e.message}`);
  }
}
