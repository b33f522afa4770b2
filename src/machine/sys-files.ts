import { serializeSysManifest, type InstallManifest, type StorageItem, type SysManifest, type UidMap } from '../manifest/index.js';

/** The file names of one signed install manifest in config/manifest.git. */
export function tripleNames(sha: string): { json: string; signed: string; pem: string } {
  return { json: `${sha}.json`, signed: `${sha}.json.signed`, pem: `${sha}.pem` };
}

/** One target's place in the new system manifest. */
export interface PlannedTarget {
  readonly name: string;
  readonly sha: string;
}

/**
 * The complete file set of a generation: `manifest.json` plus the triple of every install manifest a
 * target refers to (and nothing else, so dropped manifests leave the tree). `triples` supplies bytes.
 */
export function generationFiles(opts: {
  readonly targets: readonly PlannedTarget[];
  readonly uidmaps: readonly UidMap[];
  readonly storage: readonly StorageItem[];
  readonly triples: ReadonlyMap<string, { raw: Uint8Array; signature: Uint8Array; cert: Uint8Array }>;
  readonly extra?: Pick<SysManifest, 'DefaultNic' | 'UsedPorts' | 'IpAddrs'>;
}): Map<string, Uint8Array> {
  const sys: SysManifest = {
    uidmaps: [...opts.uidmaps],
    targets: opts.targets.map((t) => ({ name: t.name, source: tripleNames(t.sha).json })),
    storage: [...opts.storage],
    DefaultNic: opts.extra?.DefaultNic ?? '',
    UsedPorts: opts.extra?.UsedPorts ?? {},
    IpAddrs: opts.extra?.IpAddrs ?? {},
  };
  const files = new Map<string, Uint8Array>([['manifest.json', serializeSysManifest(sys)]]);
  for (const sha of new Set(opts.targets.map((t) => t.sha))) {
    const triple = opts.triples.get(sha);
    if (!triple) throw new Error(`internal: no files for install manifest ${sha}`);
    const n = tripleNames(sha);
    files.set(n.json, triple.raw);
    files.set(n.signed, triple.signature);
    files.set(n.pem, triple.cert);
  }
  return files;
}

/** The triple of a fetched install manifest, keyed by its sha. */
export function tripleOf(m: InstallManifest, signature: Uint8Array, cert: Uint8Array) {
  return [m.sha, { raw: m.raw, signature, cert }] as const;
}
