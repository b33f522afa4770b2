import { MosError, isMosError, sha256Hex } from '../base/index.js';
import type { Generation } from '../config/index.js';
import { parseInstallManifest, parseSysManifest, type InstallManifest, type InstallTarget, type SysManifest, type SysTarget } from '../manifest/index.js';

/** The signed triple behind one `<sha>.json` of a generation, handed to a verifier before it is parsed. */
export interface InstallFiles {
  readonly sha: string;
  /** `<sha>.json` bytes exactly as committed. */
  readonly raw: Uint8Array;
  /** `<sha>.json.signed` and `<sha>.pem`, when present in the commit. */
  readonly signature?: Uint8Array;
  readonly cert?: Uint8Array;
}

/**
 * Extension point for the trust area: throw (TRUST_*) to reject an install manifest. Status and history
 * run without one today; commands that act on the system must pass one.
 */
export type InstallVerifier = (files: InstallFiles) => Promise<void> | void;

/** One target of a loaded generation with the install manifest that defines it. */
export interface LoadedTarget {
  readonly sys: SysTarget;
  readonly target: InstallTarget;
  readonly manifest: InstallManifest;
}

/** A generation read and cross-checked: system manifest, install manifests, targets in system order. */
export interface LoadedSystem {
  readonly generation: Generation;
  readonly sys: SysManifest;
  readonly manifests: ReadonlyMap<string, InstallManifest>;
  readonly targets: readonly LoadedTarget[];
}

/**
 * Reads `manifest.json` of a generation, then every `<sha>.json` it references (checked against its
 * name, optionally verified, parsed) and finds each target in it. Any inconsistency is CONFIG_CORRUPT
 * naming the file or target. Reads the commit only.
 */
export async function loadSystem(generation: Generation, opts: { readonly verify?: InstallVerifier } = {}): Promise<LoadedSystem> {
  const at = `generation ${generation.number}`;
  const corrupt = (subject: string, message: string, cause?: unknown) =>
    new MosError({ code: 'CONFIG_CORRUPT', subject: `${at}: ${subject}`, message, hint: 'roll back to a good generation, or reinstall', cause });
  const sysRaw = generation.files.get('manifest.json');
  if (sysRaw === undefined) throw corrupt('manifest.json', 'is missing from the commit');
  let sys: SysManifest;
  try {
    sys = parseSysManifest(sysRaw, 'manifest.json');
  } catch (e) {
    throw isMosError(e) ? corrupt(e.subject ?? 'manifest.json', e.message, e) : e;
  }
  const manifests = new Map<string, InstallManifest>();
  const targets: LoadedTarget[] = [];
  for (const st of sys.targets ?? []) {
    const sha = st.source.slice(0, -'.json'.length);
    let manifest = manifests.get(sha);
    if (manifest === undefined) {
      const raw = generation.files.get(st.source);
      if (raw === undefined) throw corrupt(st.source, `is missing from the commit (target "${st.name}" refers to it)`);
      if (sha256Hex(raw) !== sha) throw corrupt(st.source, `content does not hash to its name (sha256 ${sha256Hex(raw)})`);
      const signature = generation.files.get(`${st.source}.signed`);
      const cert = generation.files.get(`${sha}.pem`);
      await opts.verify?.({ sha, raw, ...(signature ? { signature } : {}), ...(cert ? { cert } : {}) });
      try {
        manifest = parseInstallManifest(raw, st.source);
      } catch (e) {
        throw isMosError(e) ? corrupt(e.subject ?? st.source, e.message, e) : e;
      }
      manifests.set(sha, manifest);
    }
    const target = manifest.value.targets.find((t) => t.service_name === st.name);
    if (!target) throw corrupt(`target "${st.name}"`, `is not defined in ${st.source}, which manifest.json names as its source`);
    targets.push({ sys: st, target, manifest });
  }
  return { generation, sys, manifests, targets };
}
