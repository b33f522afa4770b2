import { t } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { endpointsFor, parseRegistriesConf, type RegistriesConf } from '../../src/oci/index.js';
import { install } from '../../src/machine/index.js';
import { runCli } from '../support/cli.js';
import { needs, tempDir } from '../support/env.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { treeHash } from '../support/tree.js';

// Fleet issue, mirrors: registries.conf v2 (containers-registries.conf(5)), mirrors tried in order and
// then the primary, a mirror an untrusted cache (every byte checked against its digest), tags resolved
// only where the entry allows it, blocked registries refused, a broken file named with line and key.

const conf = (text: string): RegistriesConf => ({ registries: parseRegistriesConf(text, 'r.conf'), files: ['r.conf'] });

t.test('registries.conf: parsing, longest prefix, rewriting, pull-from-mirror, blocked, errors', async (t) => {
  const c = conf(`
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "reg.example:5000"
location = "reg.example:5000"
[[registry.mirror]]
location = "cache-a.local:5000"
[[registry.mirror]]
location = "cache-b.local/proxy"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "cache-c.local"
pull-from-mirror = "tag-only"
insecure = true

[[registry]]
prefix = "reg.example:5000/secret"
blocked = true

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "corp-cache.local"
`);
  const hosts = (byDigest: boolean) => endpointsFor(c, 'reg.example:5000', 'machine/install', byDigest).map((e) => `${e.role} ${e.host}/${e.name}${e.insecure ? ' insecure' : ''}`);
  t.same(hosts(false), ['mirror 1 cache-a.local:5000/machine/install', 'mirror 3 cache-c.local/machine/install insecure', 'primary reg.example:5000/machine/install'], 'by tag: all and tag-only mirrors, then the primary');
  t.same(hosts(true), ['mirror 1 cache-a.local:5000/machine/install', 'mirror 2 cache-b.local/proxy/machine/install', 'primary reg.example:5000/machine/install'], 'by digest: all and digest-only mirrors, the path kept after the location');
  t.throws(() => endpointsFor(c, 'reg.example:5000', 'secret/x', false), { code: 'REGISTRY_BLOCKED', subject: 'reg.example:5000/secret/x', message: /blocked by r\.conf \(prefix reg\.example:5000\/secret\)/ }, 'the longest prefix wins: blocked');
  t.same(endpointsFor(c, 'reg.example:50001', 'x', false).map((e) => e.host), ['reg.example:50001'], 'a prefix covers whole components only');
  t.same(endpointsFor(c, 'eu.corp.example', 'a/b', true).map((e) => `${e.host}/${e.name}`), ['corp-cache.local/a/b', 'eu.corp.example/a/b'], 'a wildcard prefix');
  t.same(endpointsFor(undefined, 'h:1', 'n', true), [{ host: 'h:1', name: 'n', insecure: false, role: 'primary' }], 'no file: the reference as written');

  const bad: [string, RegExp, RegExp][] = [
    ['[[registry]\nprefix = "x"\n', /^r\.conf:1:\d+$/, /not valid TOML/],
    ['[[registry]]\nprefix = "x"\nlocation = 5\n', /^r\.conf: registry\[0\]\.location$/, /non-empty string/],
    ['[[registry]]\nprefix = "x"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "sometimes"\n', /^r\.conf: registry\[0\]\.mirror\[0\]\.pull-from-mirror$/, /"sometimes", not "all"/],
    ['[[registry]]\nprefix = "x"\nblocked = "yes"\n', /^r\.conf: registry\[0\]\.blocked$/, /true or false/],
    ['[[registry]]\ninsecure = true\n', /^r\.conf: registry\[0\]$/, /neither prefix nor location/],
  ];
  for (const [text, subject, message] of bad) t.throws(() => parseRegistriesConf(text, 'r.conf'), { code: 'CONFIG_INVALID', subject, message }, text.split('\n').slice(-2)[0] ?? text);
});

const skip = needs({ root: true, programs: ['mksquashfs'] });

/** A second fake registry holding a copy of everything `from` has (a pull-through cache, filled). */
function copyInto(to: FakeRegistry, from: FakeRegistry): void {
  for (const [k, v] of from.blobs) to.blobs.set(k, v);
  for (const [k, v] of from.manifests) to.manifests.set(k, v);
  for (const [k, v] of from.tags) to.tags.set(k, v);
}

t.test('install through mirrors: order, fallback, digest-only, a lying mirror, blocked, a broken file', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-mirrors-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const upstream = await startFakeRegistry(t, { referrers: true });
  const release = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: upstream.host, name: 'machine/install:1', pki });
  const digestOnly = await startFakeRegistry(t); // empty: every digest 404s, and it must never see a tag
  const cache = await startFakeRegistry(t, { referrers: true });
  copyInto(cache, upstream);
  const dir = tempDir(t);
  const write = (name: string, mirrors: string) => {
    const f = join(dir, name);
    writeFileSync(f, `[[registry]]\nprefix = "${upstream.host}"\n${mirrors}`);
    return f;
  };
  const mirror = (host: string, extra = '') => `[[registry.mirror]]\nlocation = "${host}"\n${extra}`;
  const fresh = () => {
    const root = makeSystemRoot(t);
    placeCa(root, pki);
    return root;
  };
  const blobGets = (r: FakeRegistry) => r.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/')).length;
  const clear = () => [upstream, digestOnly, cache].forEach((r) => (r.requests.length = 0));

  // 1. The first mirror is down, the digest-only one has nothing, the third serves everything.
  const ordered = write('ordered.conf', mirror('127.0.0.1:9') + mirror(digestOnly.host, 'pull-from-mirror = "digest-only"\n') + mirror(cache.host));
  clear();
  const r1 = await install({ root: fresh(), source: release.reference, registriesConf: ordered, limits: { retries: 0, retryBaseMs: 5 } });
  t.equal(r1.generation, 1, 'installed');
  t.ok(blobGets(cache) > 0, `the cache served the blobs (${blobGets(cache)} GETs)`);
  t.equal(blobGets(upstream), 0, 'the upstream served no blob');
  t.notOk(digestOnly.requests.some((q) => /\/manifests\/(?!sha256:)/.test(q.path) || q.path.includes('/tags/') || /sha256-[0-9a-f]{64}/.test(q.path)), 'the digest-only mirror was never asked for a tag', { diag: digestOnly.requests.map((q) => q.path) });
  t.ok(digestOnly.requests.some((q) => q.path.includes('/manifests/sha256:') || q.path.includes('/blobs/sha256:')), 'it was asked by digest');

  // 2. A mirror that serves a wrong layer: rejected, the primary serves it, the install completes.
  const layerDigest = [...upstream.blobs.entries()].sort((a, b) => b[1].length - a[1].length)[0]![0];
  const liar = await startFakeRegistry(t, {
    referrers: true,
    hook: (_req, res, url) => {
      if (url.pathname !== `/v2/mos/blobs/${layerDigest}`) return false;
      const bad = Buffer.from(upstream.blobs.get(layerDigest)!);
      bad[bad.length >> 1]! ^= 0xff;
      res.writeHead(200, { 'content-length': bad.length });
      res.end(bad);
      return true;
    },
  });
  copyInto(liar, upstream);
  const lying = write('lying.conf', mirror(liar.host));
  clear();
  const root2 = fresh();
  t.equal((await install({ root: root2, source: release.reference, registriesConf: lying, limits: { retries: 0 } })).generation, 1, 'installed despite the lying mirror');
  t.ok(upstream.requests.some((q) => q.path === `/v2/mos/blobs/${layerDigest}`), 'the primary served the layer the mirror lied about');

  // 3. Every location fails for that layer (down, lying, a primary answering 500): the error names each.
  const primary = await startFakeRegistry(t, { referrers: true, hook: (_q, res, url) => (url.pathname === `/v2/mos/blobs/${layerDigest}` ? (res.writeHead(500), res.end(), true) : false) });
  copyInto(primary, upstream);
  const allBad = join(dir, 'allbad.conf');
  writeFileSync(allBad, `[[registry]]\nprefix = "${primary.host}"\n${mirror('127.0.0.1:9')}${mirror(liar.host)}`);
  const failed = await install({ root: fresh(), source: release.reference.replace(upstream.host, primary.host), registriesConf: allBad, limits: { retries: 0, retryBaseMs: 5 } }).catch((e: Error) => e);
  t.match(failed, { message: /every location failed: mirror 1 127\.0\.0\.1:9\/mos: .*; mirror 2 127\.0\.0\.1:\d+\/mos: .*(digest|sha256).*; primary 127\.0\.0\.1:\d+\/mos: / }, 'the error names every location and why', { diag: String(failed) });

  // 4. Blocked, and a broken file through the CLI: one clear error, exit 7 / 3, nothing written.
  const blocked = join(dir, 'blocked.conf');
  writeFileSync(blocked, `[[registry]]\nprefix = "${upstream.host}/machine"\nblocked = true\n`);
  const root4 = fresh();
  const before = [...treeHash(root4)];
  const b = await runCli('mosctl', ['--root', root4, 'install', '--registries-conf', blocked, release.reference]);
  t.equal(b.code, 7, 'blocked: exit 7');
  t.match(b.stderr, new RegExp(`${upstream.host}/machine/install: is blocked by .*blocked\\.conf`));
  const broken = join(dir, 'broken.conf');
  writeFileSync(broken, `[[registry]]\nprefix = "${upstream.host}"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "never"\n`);
  const e = await runCli('mosctl', ['--root', root4, 'install', '--registries-conf', broken, release.reference]);
  t.equal(e.code, 3, 'a broken file: exit 3');
  t.match(e.stderr, /broken\.conf: registry\[0\]\.mirror\[0\]\.pull-from-mirror: is "never", not "all", "digest-only" or "tag-only"/);
  const syntax = join(dir, 'syntax.conf');
  writeFileSync(syntax, `[[registry]]\nprefix = "${upstream.host}"\nlocation = \n`);
  const s = await runCli('mosctl', ['--root', root4, 'install', '--registries-conf', syntax, release.reference]);
  t.equal(s.code, 3);
  t.match(s.stderr, /syntax\.conf:3:\d+: not valid TOML/, 'names the line');
  t.same([...treeHash(root4)], before, 'nothing written by the refused installs');
});
