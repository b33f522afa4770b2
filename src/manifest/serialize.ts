import { goMarshal, type GoObject, type GoValue } from './go-json.js';
import type { InstallFile, InstallTarget, Network, StorageItem, TargetStorage } from './types.js';

/**
 * install.json bytes exactly as Go mos's json.Marshal(InstallFile) writes them: compact, mos key order
 * (mos.md §3.1), HTML-escaped strings, `null` for absent storage/ports, `update_type` always present.
 * This is what `mosb manifest publish` signs; afterwards only these raw bytes are used.
 */
export function serializeInstallFile(f: InstallFile): Uint8Array {
  const doc: GoObject = {
    version: f.version,
    product: f.product,
    storage: f.storage === null ? null : f.storage.map(storageItem),
    targets: f.targets.map(target),
    update_type: f.update_type,
  };
  return new TextEncoder().encode(goMarshal(doc));
}

/** A StorageItem in mos's field order. */
export function storageItem(s: StorageItem): GoObject {
  return { label: s.label, persistent: s.persistent, nsgroup: s.nsgroup, size: s.size };
}

function target(t: InstallTarget): GoObject {
  return {
    service_name: t.service_name,
    version: t.version,
    service_type: t.service_type,
    network: network(t.network),
    nsgroup: t.nsgroup,
    digest: t.digest,
    storage: t.storage === null ? null : t.storage.map(targetStorage),
    size: t.size,
  };
}

function network(n: Network): GoObject {
  const ports: GoValue = n.ports === null ? null : n.ports.map((p) => ({ host: p.host, container: p.container }));
  return { type: n.type, ipv4: n.ipv4, ipv6: n.ipv6, ports };
}

function targetStorage(s: TargetStorage): GoObject {
  return { dest: s.dest, label: s.label };
}
