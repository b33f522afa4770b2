import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { MosError } from '../../base/index.js';
import { readFileLimited } from '../../host/index.js';

// containers-registries.conf(5) v2: `[[registry]]` entries with `prefix`, `location`, `insecure`,
// `blocked` and ordered `[[registry.mirror]]` entries (`location`, `insecure`, `pull-from-mirror`).
// A mirror is an untrusted cache: everything fetched from it is checked against its digest, and a tag
// is resolved only where the entry allows it. Other keys of the format (search registries, short
// names, aliases) are read and ignored.

/** The default files, as podman, skopeo and CRI-O read them. */
export const DEFAULT_REGISTRIES_CONF = '/etc/containers/registries.conf';
const MAX_CONF_BYTES = 1024 * 1024;

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  readonly location: string;
  readonly insecure: boolean;
  readonly pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** What references it applies to: `host[/path]`, or `*.domain` for every host under domain. */
  readonly prefix: string;
  /** Where the prefix is really served (the primary); the prefix itself when not given. */
  readonly location: string;
  readonly insecure: boolean;
  readonly blocked: boolean;
  readonly mirrors: readonly MirrorEntry[];
  /** `file` (for messages). */
  readonly from: string;
}

export interface RegistriesConf {
  readonly registries: readonly RegistryEntry[];
  /** The files read, in order. */
  readonly files: readonly string[];
}

/** One place to try for a reference: a mirror or the primary, rewritten to its own host and name. */
export interface Endpoint {
  readonly host: string;
  readonly name: string;
  readonly insecure: boolean;
  /** `mirror` (with its position) or `primary`, for messages. */
  readonly role: string;
}

const invalid = (subject: string, message: string, hint?: string) =>
  new MosError({ code: 'CONFIG_INVALID', subject, message, hint: hint ?? 'see containers-registries.conf(5): [[registry]] prefix, location, insecure, blocked, [[registry.mirror]]' });

/** Parses one registries.conf text (TOML); CONFIG_INVALID naming the file, line and key on any error. */
export function parseRegistriesConf(text: string, file: string): RegistryEntry[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw invalid(`${file}:${e.line}:${e.column}`, `not valid TOML: ${first}`, 'fix the line named, or pass another file with --registries-conf');
    }
    throw e;
  }
  const list = doc['registry'];
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw invalid(`${file}: registry`, 'must be an array of tables ([[registry]])');
  return list.map((raw, i) => {
    const at = `${file}: registry[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(at, 'must be a table');
    const r = raw as Record<string, unknown>;
    const str = (k: string): string | undefined => {
      const v = r[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '') throw invalid(`${at}.${k}`, 'must be a non-empty string');
      return v.replace(/\/+$/, '');
    };
    const bool = (o: Record<string, unknown>, k: string, where: string): boolean => {
      const v = o[k];
      if (v === undefined) return false;
      if (typeof v !== 'boolean') throw invalid(`${where}.${k}`, 'must be true or false');
      return v;
    };
    const location = str('location');
    const prefix = str('prefix') ?? location;
    if (prefix === undefined) throw invalid(at, 'has neither prefix nor location');
    if (prefix.startsWith('*.') && location !== undefined) throw invalid(`${at}.location`, 'cannot be set for a wildcard prefix (*.domain)');
    const mirrorsRaw = r['mirror'] ?? [];
    if (!Array.isArray(mirrorsRaw)) throw invalid(`${at}.mirror`, 'must be an array of tables ([[registry.mirror]])');
    const mirrors = mirrorsRaw.map((m, j): MirrorEntry => {
      const mat = `${at}.mirror[${j}]`;
      if (m === null || typeof m !== 'object' || Array.isArray(m)) throw invalid(mat, 'must be a table');
      const mo = m as Record<string, unknown>;
      if (typeof mo['location'] !== 'string' || mo['location'] === '') throw invalid(`${mat}.location`, 'must be a non-empty string');
      const pull = mo['pull-from-mirror'] ?? 'all';
      if (pull !== 'all' && pull !== 'digest-only' && pull !== 'tag-only') throw invalid(`${mat}.pull-from-mirror`, `is ${JSON.stringify(pull)}, not "all", "digest-only" or "tag-only"`);
      return { location: (mo['location'] as string).replace(/\/+$/, ''), insecure: bool(mo, 'insecure', mat), pullFromMirror: pull };
    });
    return { prefix, location: location ?? prefix, insecure: bool(r, 'insecure', at), blocked: bool(r, 'blocked', at), mirrors, from: file };
  });
}

/**
 * Reads registries.conf: `file` when given (it must exist), else the default file and the `.conf`
 * files of `registries.conf.d/` beside it in name order, each entry replacing an earlier one with the
 * same prefix. Undefined when no file exists (no mirrors: references are used as written).
 */
export async function loadRegistriesConf(file?: string): Promise<RegistriesConf | undefined> {
  const files: string[] = [];
  const read = async (f: string, required: boolean): Promise<RegistryEntry[] | undefined> => {
    let text: string;
    try {
      text = (await readFileLimited(f, MAX_CONF_BYTES)).toString('utf8');
    } catch (e) {
      if (!required && e instanceof MosError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
    files.push(f);
    return parseRegistriesConf(text, f);
  };
  const byPrefix = new Map<string, RegistryEntry>();
  const add = (entries: readonly RegistryEntry[] | undefined) => entries?.forEach((e) => byPrefix.set(e.prefix, e));
  if (file !== undefined) add(await read(file, true));
  else {
    add(await read(DEFAULT_REGISTRIES_CONF, false));
    const dir = `${DEFAULT_REGISTRIES_CONF}.d`;
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.conf')).sort();
    for (const n of names) add(await read(join(dir, n), false));
  }
  return files.length > 0 ? { registries: [...byPrefix.values()], files } : undefined;
}

/** True when `prefix` covers `host/name` (a whole path component, or a `*.domain` wildcard on the host). */
function covers(prefix: string, host: string, ref: string): boolean {
  if (prefix.startsWith('*.')) return host.endsWith(prefix.slice(1)) && host.length > prefix.length - 1;
  return ref === prefix || ref.startsWith(`${prefix}/`);
}

/** `host[:port]/path` → host and repository name. */
function split(location: string, what: string): { host: string; name: string } {
  const i = location.indexOf('/');
  if (i <= 0 || i === location.length - 1) throw invalid(what, `${JSON.stringify(location)} does not name a repository (host/name)`);
  return { host: location.slice(0, i), name: location.slice(i + 1) };
}

/**
 * Where to fetch `host/name` from, in order: the mirrors of the entry with the longest prefix covering
 * it that may serve this kind of reference (`byDigest`: digest-only and all; by tag: tag-only and all),
 * then the primary location. The reference as written when no entry covers it. REGISTRY_BLOCKED when the
 * entry is blocked.
 */
export function endpointsFor(conf: RegistriesConf | undefined, host: string, name: string, byDigest: boolean): Endpoint[] {
  const ref = `${host}/${name}`;
  const entry = conf?.registries
    .filter((e) => covers(e.prefix, host, ref))
    .sort((a, b) => b.prefix.length - a.prefix.length)[0];
  if (!entry) return [{ host, name, insecure: false, role: 'primary' }];
  if (entry.blocked) {
    throw new MosError({ code: 'REGISTRY_BLOCKED', subject: ref, message: `is blocked by ${entry.from} (prefix ${entry.prefix})`, hint: 'use another source, or remove blocked = true from that entry' });
  }
  // The part of the reference after the prefix: kept on every location (a wildcard keeps the whole name).
  const rest = entry.prefix.startsWith('*.') ? `/${name}` : ref.slice(entry.prefix.length);
  const primary = entry.prefix.startsWith('*.') ? { host, name } : split(`${entry.location}${rest}`, `${entry.from}: location`);
  const out: Endpoint[] = [];
  entry.mirrors.forEach((m, i) => {
    if (byDigest ? m.pullFromMirror === 'tag-only' : m.pullFromMirror === 'digest-only') return;
    out.push({ ...split(`${m.location}${rest}`, `${entry.from}: mirror location`), insecure: m.insecure, role: `mirror ${i + 1}` });
  });
  out.push({ ...primary, insecure: entry.insecure, role: 'primary' });
  return out;
}

/**
 * Runs `attempt` on each candidate (an endpoint and what was opened for it) in order until one
 * succeeds. When all fail, the error names every location tried and why (the code is the last one's:
 * the primary's, when it was tried).
 */
export async function firstThatWorks<C extends { readonly endpoint: Endpoint }, T>(candidates: readonly C[], attempt: (c: C) => Promise<T>, what: string): Promise<T> {
  if (candidates.length === 1) return attempt(candidates[0]!);
  const failures: string[] = [];
  let last: unknown;
  for (const c of candidates) {
    try {
      return await attempt(c);
    } catch (err) {
      if (!(err instanceof MosError) || err.code === 'CANCELED') throw err;
      last = err;
      const e = c.endpoint;
      failures.push(`${e.role} ${e.host}/${e.name}: ${err.subject ? `${err.subject}: ` : ''}${err.message}`);
    }
  }
  const l = last as MosError;
  throw new MosError({ code: l.code, subject: what, message: `every location failed: ${failures.join('; ')}`, ...(l.hint ? { hint: l.hint } : {}), cause: l });
}
