import { isIPv4, isIPv6 } from 'node:net';
import { isTargetName } from '../base/index.js';
import { NETWORK_TYPES, RESERVED_LABELS, SERVICE_TYPES, SHA256_DIGEST_RE } from './constants.js';
import { at, describe, type FieldReader } from './reader.js';
import type { Network, NetworkType, PortMap, ServiceType, StorageItem, TargetStorage } from './types.js';

// Readers and rules shared by manifest.yaml and install.json. `strict` rejects unknown keys (YAML, which
// people write); install.json is read leniently like mos (unknown keys ignored) but validated the same.

type Obj = Readonly<Record<string, unknown>>;

const NETWORK_KEYS = ['type', 'ipv4', 'ipv6', 'ports'] as const;
const PORT_KEYS = ['host', 'container'] as const;
const STORAGE_ITEM_KEYS = ['label', 'persistent', 'nsgroup', 'size'] as const;
const TARGET_STORAGE_KEYS = ['dest', 'label'] as const;

/** Checks a name used as a path component (target, nsgroup, label); returns the message or undefined. */
export function nameProblem(name: string): string | undefined {
  if (isTargetName(name)) return undefined;
  if (name.includes('..') && isTargetName(name.replaceAll('..', '.'))) return `${describe(name)} must not contain ".."`;
  return `${describe(name)} is not a valid name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)`;
}

/** Reads a service_type; undefined (reported) when not one of the enum. */
export function readServiceType(r: FieldReader, o: Obj, path: string): ServiceType | undefined {
  const v = r.str(o, 'service_type', path);
  if ((SERVICE_TYPES as readonly string[]).includes(v)) return v as ServiceType;
  r.fail(at(path, 'service_type'), v === '' ? 'is missing' : `unknown service_type ${describe(v)}`, `use one of: ${SERVICE_TYPES.join(', ')}`);
  return undefined;
}

/** Reads and checks a target network: type enum, addresses and ports for `simple`. */
export function readNetwork(r: FieldReader, v: unknown, path: string, strict: boolean): Network | undefined {
  const o = r.map(v, path);
  if (!o) return undefined;
  if (strict) r.onlyKeys(o, NETWORK_KEYS, path);
  const type = r.str(o, 'type', path);
  const ipv4 = r.str(o, 'ipv4', path);
  const ipv6 = r.str(o, 'ipv6', path);
  const rawPorts = r.list(o, 'ports', path);
  let ok = true;
  if (!(NETWORK_TYPES as readonly string[]).includes(type)) {
    r.fail(at(path, 'type'), type === '' ? 'is missing' : `unknown network type ${describe(type)}`, `use one of: ${NETWORK_TYPES.join(', ')}`);
    ok = false;
  }
  if (ipv4 !== '' && !isCidr(ipv4, 4)) {
    r.fail(at(path, 'ipv4'), `${describe(ipv4)} is not an IPv4 address or CIDR (e.g. 10.0.3.5/24)`);
    ok = false;
  }
  if (ipv6 !== '' && !isCidr(ipv6, 6)) {
    r.fail(at(path, 'ipv6'), `${describe(ipv6)} is not an IPv6 address or CIDR (e.g. fd00::5/64)`);
    ok = false;
  }
  // People who write addresses or ports for host/none expect them to apply; mos silently ignores them.
  if (strict && (type === 'host' || type === 'none') && (ipv4 !== '' || ipv6 !== '' || (rawPorts?.length ?? 0) > 0)) {
    r.fail(path, `addresses and ports only apply to network type "simple", not ${describe(type)}`);
    ok = false;
  }
  let ports: PortMap[] | null = null;
  if (rawPorts !== null) {
    ports = [];
    const seen = new Set<number>();
    rawPorts.forEach((pv, i) => {
      const pp = at(at(path, 'ports'), i);
      const po = r.map(pv, pp);
      if (!po) return void (ok = false);
      if (strict) r.onlyKeys(po, PORT_KEYS, pp);
      const host = port(r, po, 'host', pp);
      const container = port(r, po, 'container', pp);
      if (host === undefined || container === undefined) return void (ok = false);
      if (seen.has(host)) {
        r.fail(at(pp, 'host'), `port ${host} is forwarded twice`);
        ok = false;
      }
      seen.add(host);
      ports!.push({ host, container });
    });
  }
  return ok ? { type: type as NetworkType, ipv4, ipv6, ports } : undefined;
}

function port(r: FieldReader, o: Obj, key: string, path: string): number | undefined {
  const before = r.problems.length;
  const n = r.int(o, key, path);
  if (n === undefined) {
    // Absent, empty or null: all mean "no port" (a bad value was reported by int already).
    if (r.problems.length === before) r.fail(at(path, key), 'is missing');
    return undefined;
  }
  if (n < 1 || n > 65535) {
    r.fail(at(path, key), `${n} is not a port (1-65535)`);
    return undefined;
  }
  return n;
}

/** True for an address of the family, optionally with a prefix length (`10.0.3.5`, `10.0.3.0/24`). */
export function isCidr(s: string, family: 4 | 6): boolean {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  if (family === 4 ? !isIPv4(addr) : !isIPv6(addr)) return false;
  if (slash < 0) return true;
  const len = s.slice(slash + 1);
  return /^[0-9]{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
}

/** Reads the manifest-level storage list: labels safe, unique, not reserved; sizes positive MiB. */
export function readStorageItems(r: FieldReader, list: readonly unknown[] | null, path: string, strict: boolean): StorageItem[] | null {
  if (list === null) return null;
  const out: StorageItem[] = [];
  const seen = new Set<string>();
  list.forEach((v, i) => {
    const p = at(path, i);
    const o = r.map(v, p);
    if (!o) return;
    if (strict) r.onlyKeys(o, STORAGE_ITEM_KEYS, p);
    const label = r.str(o, 'label', p);
    const persistent = r.bool(o, 'persistent', p);
    const nsgroup = r.str(o, 'nsgroup', p);
    const size = r.int(o, 'size', p);
    let ok = true;
    const lp = at(p, 'label');
    if (label === '') (r.fail(lp, 'is missing'), (ok = false));
    else if (nameProblem(label)) (r.fail(lp, nameProblem(label)!), (ok = false));
    else if (RESERVED_LABELS.includes(label)) (r.fail(lp, `"${label}" is reserved for mos's own partitions`, `reserved: ${RESERVED_LABELS.join(', ')}`), (ok = false));
    else if (seen.has(label)) (r.fail(lp, `storage label "${label}" is declared twice`), (ok = false));
    seen.add(label);
    if (!nsgroupOk(r, nsgroup, at(p, 'nsgroup'))) ok = false;
    if (size === undefined || size === 0) {
      if (size === 0 || !Object.prototype.hasOwnProperty.call(o, 'size')) r.fail(at(p, 'size'), size === 0 ? 'must be positive (MiB)' : 'is missing (MiB)');
      ok = false;
    }
    if (ok) out.push({ label, persistent, nsgroup, size: size! });
  });
  return out;
}

/** Reads a target's storage uses: absolute dest without `..` or spaces (it lands in an lxc.mount.entry). */
export function readTargetStorage(r: FieldReader, list: readonly unknown[] | null, path: string, strict: boolean): TargetStorage[] | null {
  if (list === null) return null;
  const out: TargetStorage[] = [];
  const dests = new Set<string>();
  list.forEach((v, i) => {
    const p = at(path, i);
    const o = r.map(v, p);
    if (!o) return;
    if (strict) r.onlyKeys(o, TARGET_STORAGE_KEYS, p);
    const dest = r.str(o, 'dest', p);
    const label = r.str(o, 'label', p);
    let ok = true;
    if (dest === '') (r.fail(at(p, 'dest'), 'is missing'), (ok = false));
    else if (!dest.startsWith('/') || dest === '/' || /[\s\0\\]/.test(dest) || dest.split('/').some((c) => c === '..' || c === '.')) {
      r.fail(at(p, 'dest'), `${describe(dest)} is not an absolute path below / (no ., .., spaces)`);
      ok = false;
    } else if (dests.has(dest)) (r.fail(at(p, 'dest'), `${dest} is mounted twice`), (ok = false));
    dests.add(dest);
    if (label === '') (r.fail(at(p, 'label'), 'is missing'), (ok = false));
    else if (nameProblem(label)) (r.fail(at(p, 'label'), nameProblem(label)!), (ok = false));
    if (ok) out.push({ dest, label });
  });
  return out;
}

/** nsgroup "" or "none" is the host namespace; any other value is a shared mapping name. */
export function nsgroupOk(r: FieldReader, nsgroup: string, path: string): boolean {
  if (nsgroup === '' || nsgroup === 'none') return true;
  const why = nameProblem(nsgroup);
  if (why) r.fail(path, why);
  return why === undefined;
}

/** Checks a digest field; `required` for install.json, optional in manifest.yaml. */
export function digestOk(r: FieldReader, digest: string, path: string, required: boolean): boolean {
  if (digest === '') {
    if (required) r.fail(path, 'is missing (sha256:<64 hex> of the image manifest)');
    return !required;
  }
  if (SHA256_DIGEST_RE.test(digest)) return true;
  r.fail(path, `${describe(digest)} is not a sha256 digest (sha256:<64 lowercase hex>)`);
  return false;
}
