import { decodeText, loadJson } from './decode.js';
import { nameProblem, readStorageItems } from './fields.js';
import { at, FieldReader, own } from './reader.js';
import type { SysManifest, SysTarget, UidMap } from './types.js';

/** `<sha>.json`: the only form a SysTarget source takes. */
export const SYS_SOURCE_RE = /^[a-f0-9]{64}\.json$/;

/**
 * Parses manifest.json (the system manifest). Lenient like mos about extra keys; Go mos's untagged
 * fields (`DefaultNic`, `UsedPorts`, `IpAddrs`, per target `OCIManifest`, `OCIConfig`) are read and
 * kept. Target names must be valid and unique, sources `<sha>.json`. Throws MANIFEST_INVALID. Pure.
 */
export function parseSysManifest(raw: Uint8Array, file: string): SysManifest {
  const r = new FieldReader(file, 'json');
  const text = decodeText(r, raw);
  const doc = text === undefined ? undefined : loadJson(r, text);
  const o = r.problems.length === 0 ? r.map(doc, '') : undefined;
  if (!o) throw r.problems[0]!;
  const uidmaps = r.list(o, 'uidmaps', '')?.flatMap((v, i): UidMap[] => {
    const p = at('uidmaps', i);
    const m = r.map(v, p);
    if (!m) return [];
    const name = r.str(m, 'idmap-name', p);
    const hostid = r.int(m, 'hostid', p);
    if (name === '') r.fail(at(p, 'idmap-name'), 'is missing');
    return hostid === undefined ? [] : [{ 'idmap-name': name, hostid }];
  }) ?? null;
  const seen = new Set<string>();
  const targets = r.list(o, 'targets', '')?.flatMap((v, i): SysTarget[] => {
    const p = at('targets', i);
    const m = r.map(v, p);
    if (!m) return [];
    const name = r.str(m, 'name', p);
    const source = r.str(m, 'source', p);
    const why = name === '' ? 'is missing' : nameProblem(name);
    if (why) r.fail(at(p, 'name'), why);
    else if (seen.has(name)) r.fail(at(p, 'name'), `target "${name}" is listed twice`);
    seen.add(name);
    if (!SYS_SOURCE_RE.test(source)) r.fail(at(p, 'source'), `${JSON.stringify(source).slice(0, 80)} is not <sha256 hex>.json`);
    const extra = { ...(own(m, 'OCIManifest') !== undefined ? { OCIManifest: own(m, 'OCIManifest') } : {}), ...(own(m, 'OCIConfig') !== undefined ? { OCIConfig: own(m, 'OCIConfig') } : {}) };
    return [{ name, source, ...extra }];
  }) ?? null;
  const storage = readStorageItems(r, r.list(o, 'storage', ''), 'storage', false);
  const DefaultNic = r.str(o, 'DefaultNic', '');
  const UsedPorts = stringMap(r, own(o, 'UsedPorts'), 'UsedPorts');
  const IpAddrs = stringMap(r, own(o, 'IpAddrs'), 'IpAddrs');
  if (r.problems.length > 0) throw r.problems[0]!;
  return { uidmaps, targets, storage, DefaultNic, UsedPorts, IpAddrs };
}

function stringMap(r: FieldReader, v: unknown, path: string): Record<string, string> | null {
  if (v === undefined || v === null) return null;
  const m = r.map(v, path);
  if (!m) return null;
  const out: Record<string, string> = {};
  for (const k of Object.keys(m)) {
    const s = m[k];
    // Go writes the map values as strings (target names); anything else is not mos's.
    if (typeof s !== 'string') r.fail(at(path, k), 'must be a string');
    else Object.defineProperty(out, k, { value: s, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * manifest.json bytes: mos's field names in mos's order, two-space indented, trailing newline.
 * Null lists stay null (Go reads both); absent maps are written as `{}` (Go mos panics writing into a null map after its own updates).
 */
export function serializeSysManifest(m: SysManifest): Uint8Array {
  const doc = {
    uidmaps: m.uidmaps === null ? null : m.uidmaps.map((u) => ({ 'idmap-name': u['idmap-name'], hostid: u.hostid })),
    targets: m.targets === null ? null : m.targets.map((t) => ({
      name: t.name,
      source: t.source,
      ...(t.OCIManifest !== undefined ? { OCIManifest: t.OCIManifest } : {}),
      ...(t.OCIConfig !== undefined ? { OCIConfig: t.OCIConfig } : {}),
    })),
    storage: m.storage === null ? null : m.storage.map((s) => ({ label: s.label, persistent: s.persistent, nsgroup: s.nsgroup, size: s.size })),
    DefaultNic: m.DefaultNic ?? '',
    UsedPorts: m.UsedPorts ?? {},
    IpAddrs: m.IpAddrs ?? {},
  };
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + '\n');
}
