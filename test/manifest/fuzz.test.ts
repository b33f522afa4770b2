import { t } from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MosError } from '../../src/base/index.js';
import { TEST_SEED } from '../support/random.js';
import { checkImportFile, checkInstallFile, checkManifestFile, parseSysManifest, serializeInstallFile, type InstallFile } from '../../src/manifest/index.js';

// Deterministic PRNG (mulberry32) so a failing case can be reproduced from the printed seed.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// FUZZ_SEED (older name) or MOSCTL_TEST_SEED replays a run; the seed is printed.
const seed = Number(process.env.FUZZ_SEED ?? TEST_SEED);
const CASES = Number(process.env.FUZZ_CASES ?? 12_000);
const rand = rng(seed);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const dir = fileURLToPath(new URL('../../manifests/', import.meta.url));
const yamlSeeds = readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(dir + f, 'utf8'));
const install: InstallFile = {
  version: 1,
  product: 'p',
  storage: [{ label: 'data', persistent: true, nsgroup: 'c1', size: 5 }],
  targets: [
    { service_name: 'hostfs', version: '1', service_type: 'hostfs', network: { type: 'host', ipv4: '', ipv6: '', ports: null }, nsgroup: '', digest: `sha256:${'a'.repeat(64)}`, storage: null, size: 9 },
    { service_name: 'web', version: '2', service_type: 'container', network: { type: 'simple', ipv4: '10.0.3.2/24', ipv6: '', ports: [{ host: 80, container: 80 }] }, nsgroup: 'c1', digest: `sha256:${'b'.repeat(64)}`, storage: [{ dest: '/d', label: 'data' }], size: 9 },
  ],
  update_type: 'complete',
};
const jsonSeeds = [new TextDecoder().decode(serializeInstallFile(install)), `{"uidmaps":[{"idmap-name":"c1","hostid":1}],"targets":[{"name":"a","source":"${'c'.repeat(64)}.json"}],"storage":null,"UsedPorts":{},"IpAddrs":{}}`];

const TOKENS = ['\n', ' ', ':', '- ', '[', ']', '{', '}', ',', '"', "'", '&a ', '*a', '!!str ', '!!binary ', '? ', '|', '>', '#', '---', '...', '~', 'null', 'true', '0x1F', '1e9', '-1', '65536', '70000', '__proto__', 'constructor', 'targets', 'storage', 'network', 'ports', 'version', '\u2028', '\ufeff', '\0', '\t', '%YAML 1.2\n', '<<: *a', '9'.repeat(30)];

function mutate(s: string): string {
  let out = s;
  const n = 1 + int(4);
  for (let i = 0; i < n; i++) {
    const at = int(out.length + 1);
    switch (int(5)) {
      case 0: out = out.slice(0, at) + out.slice(at + 1 + int(8)); break; // delete
      case 1: out = out.slice(0, at) + pick(TOKENS) + out.slice(at); break; // insert token
      case 2: out = out.slice(0, at) + String.fromCharCode(int(128)) + out.slice(at + 1); break; // flip a char
      case 3: { const b = int(out.length); out = out.slice(0, at) + out.slice(b, b + int(40)) + out.slice(at); break; } // duplicate a span
      default: out = out.slice(0, at); // truncate
    }
  }
  return out;
}

function randomDoc(depth = 0): string {
  if (depth > 4 || rand() < 0.3) return pick(TOKENS);
  const parts = Array.from({ length: int(5) }, () => `${pick(TOKENS)}: ${randomDoc(depth + 1)}`);
  return rand() < 0.5 ? `{${parts.join(', ')}}` : parts.join('\n' + ' '.repeat(depth * 2));
}

t.test(`fuzz manifests (seed ${seed}, ${CASES} cases): only MosErrors, never another exception`, async (t) => {
  let problems = 0;
  let clean = 0;
  const failures: string[] = [];
  for (let i = 0; i < CASES && failures.length < 5; i++) {
    const kind = int(4);
    const text = kind === 0 ? randomDoc() : kind === 1 ? mutate(pick(jsonSeeds)) : mutate(pick(yamlSeeds));
    const bytes = rand() < 0.1 ? Uint8Array.from(Buffer.from(text), (b) => (rand() < 0.01 ? int(256) : b)) : new TextEncoder().encode(text);
    try {
      for (const r of [checkImportFile(text, 'f'), checkInstallFile(bytes, 'f'), checkManifestFile(bytes, 'f')]) {
        for (const p of r.problems) if (!(p instanceof MosError) || !p.subject?.startsWith('f')) throw new Error(`bad problem ${String(p)}`);
        if (r.problems.length) problems++;
        else clean++;
      }
      try {
        parseSysManifest(bytes, 'f');
      } catch (e) {
        if (!(e instanceof MosError)) throw e;
      }
    } catch (e) {
      failures.push(`case ${i}: ${JSON.stringify(text).slice(0, 300)}: ${e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.same(failures, [], `seed ${seed}`);
  t.ok(problems > 0 && clean > 0, `both outcomes seen (${problems} with problems, ${clean} clean)`);
});

// Structure-aware: parse a seed, change one node (null, a value of another type, the key or element
// removed, a key given twice), write it back, check it. The invariant: a document either has problems
// or keeps every target it lists. A target must never vanish without a word (a `null` once dropped one).
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const WRONG: readonly Json[] = [null, 42, -1, 1.5, 'text', '', true, [], [null], {}, { a: null }, '9'.repeat(30)];

function paths(v: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

/** The document with the node at `path` changed; `dup` set when the change is "this key twice" (text level). */
function change(doc: Json, path: (string | number)[]): { doc: Json; dup?: { path: (string | number)[]; first: Json } } {
  const copy = structuredClone(doc);
  if (path.length === 0) return { doc: pick(WRONG) };
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], copy);
  const key = path[path.length - 1]!;
  switch (int(4)) {
    case 0: parent[key] = null; break;
    case 1: parent[key] = pick(WRONG); break;
    case 2: if (Array.isArray(parent)) parent.splice(Number(key), 1); else delete parent[key]; break;
    default: if (!Array.isArray(parent)) return { doc: copy, dup: { path, first: pick(WRONG) } }; parent.splice(Number(key), 0, structuredClone(parent[Number(key)])); // an element twice
  }
  return { doc: copy };
}

/** JSON text; with `dup`, that key appears twice (a changed value first, the real one last). */
function toJson(v: Json, dup?: { path: (string | number)[]; first: Json }, at: (string | number)[] = []): string {
  if (Array.isArray(v)) return `[${v.map((x, i) => toJson(x, dup, [...at, i])).join(',')}]`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const parts = Object.entries(v).map(([k, x]) => {
    const here = [...at, k];
    const twice = dup && dup.path.length === here.length && dup.path.every((p, i) => p === here[i]) ? `${JSON.stringify(k)}:${JSON.stringify(dup.first)},` : '';
    return `${twice}${JSON.stringify(k)}:${toJson(x, dup, here)}`;
  });
  return `{${parts.join(',')}}`;
}

const listed = (doc: Json): { count: number; names: string[] } | undefined => {
  const ts = doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? doc['targets'] : undefined;
  if (!Array.isArray(ts)) return undefined;
  return { count: ts.length, names: ts.flatMap((x) => {
    const name = x !== null && typeof x === 'object' && !Array.isArray(x) ? x['service_name'] : undefined;
    return typeof name === 'string' ? [name] : [];
  }) };
};

t.test(`structure-aware fuzz (seed ${seed}): a document has problems or keeps every target it lists`, async (t) => {
  const { load, dump } = await import('js-yaml');
  const yamlDocs = yamlSeeds.map((s) => load(s) as Json);
  const jsonDoc = JSON.parse(jsonSeeds[0]!) as Json;
  const cases = Math.max(1, Math.floor(CASES / 3));
  const failures: string[] = [];
  let clean = 0;
  let refused = 0;
  for (let i = 0; i < cases && failures.length < 5; i++) {
    const yamlCase = rand() < 0.5;
    const seedDoc = yamlCase ? pick(yamlDocs) : jsonDoc;
    let { doc, dup } = change(seedDoc, pick(paths(seedDoc)));
    if (rand() < 0.3) doc = change(doc, pick(paths(doc))).doc; // sometimes two changes
    // YAML has no way to give a key twice that js-yaml accepts: it refuses the document (checked too).
    const text = yamlCase ? (dup ? toJson(doc, dup) : dump(doc, { flowLevel: int(4) })) : toJson(doc, dup);
    const input = dup ? listed(JSON.parse(toJson(doc, dup)) as Json) : listed(doc);
    try {
      const r = yamlCase ? checkImportFile(text, 'f') : checkInstallFile(new TextEncoder().encode(text), 'f');
      for (const p of r.problems) if (!(p instanceof MosError) || !p.subject?.startsWith('f')) throw new Error(`bad problem ${String(p)}`);
      if (r.problems.length > 0) {
        refused++;
        continue;
      }
      clean++;
      const out = (yamlCase ? (r.value as { targets?: { service_name: string }[] } | undefined)?.targets : (r.value as { value?: { targets: { service_name: string }[] } } | undefined)?.value?.targets) ?? [];
      if (input === undefined) throw new Error('accepted without a targets list');
      if (out.length !== input.count) throw new Error(`${input.count} targets in, ${out.length} out, no problem reported`);
      const names = new Set(out.map((x) => x.service_name));
      for (const n of input.names) if (!names.has(n)) throw new Error(`target ${n} vanished`);
    } catch (e) {
      failures.push(`case ${i} (${yamlCase ? 'manifest.yaml' : 'install.json'}): ${JSON.stringify(text).slice(0, 400)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  t.same(failures, [], `seed ${seed}`);
  t.ok(clean > 0 && refused > 0, `both outcomes seen (${clean} accepted, ${refused} refused)`);
});
