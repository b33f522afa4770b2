import { t } from 'tap';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { openRepository, OCI_MANIFEST, OCI_CONFIG, OCI_EMPTY, EMPTY_JSON_DIGEST, type Descriptor, type RegistryOptions } from '../../src/oci/index.js';
import { startFakeRegistry } from '../support/fake-registry.js';
import { digestOf } from '../support/registry.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/registry-faults');

// Fast failure settings so every fault case is bounded to well under a second or two.
const FAST: RegistryOptions = { retryBaseMs: 5, stallTimeoutMs: 400, requestTimeoutMs: 800 };

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}
async function* once1(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}
const desc = (b: Uint8Array, mediaType = 'application/octet-stream'): Descriptor => ({ mediaType, digest: digestOf(b), size: b.byteLength });
const blobPath = (d: Descriptor) => `/v2/mos/x/blobs/${d.digest}`;

t.test('referrers API: artifactType filter, Link paging, OCI-Subject means no fallback tag', async (t) => {
  for (const applyFilter of [true, false]) {
    const fake = await startFakeRegistry(t, { referrers: true, referrersPageSize: 2, applyFilter });
    const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
    const subject = fake.putManifest(OCI_MANIFEST, JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: EMPTY_JSON_DIGEST, size: 2 }, layers: [] }), 'v1');
    const pushed: Record<string, string[]> = { sig: [], crt: [] };
    for (const [i, kind] of ['sig', 'crt', 'sig', 'crt', 'sig'].entries()) {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: `application/vnd.machine.${kind}`, config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 }, layers: [], subject, annotations: { i: String(i) } }));
      await repo.pushManifest(desc(bytes, OCI_MANIFEST), bytes);
      pushed[kind]!.push(digestOf(bytes));
    }
    t.notOk([...fake.tags.keys()].some((k) => k.startsWith('sha256-')), 'registry answered OCI-Subject: no fallback tag written');
    const all = await repo.referrers(subject);
    t.equal(all.length, 5, 'all pages followed');
    t.equal(fake.requests.filter((r) => r.path.includes('/referrers/')).length, 3, '3 pages of 2');
    const sigs = await repo.referrers(subject.digest, { artifactType: 'application/vnd.machine.sig' });
    t.strictSame(sigs.map((d) => d.digest).sort(), pushed.sig!.sort(), `filtered ${applyFilter ? 'by the registry' : 'client-side'}`);
    t.ok(fake.requests.some((r) => r.path.includes('artifactType=application%2Fvnd.machine.sig')), 'filter sent to the registry');
  }
});

t.test('Bearer auth: token realm, insufficient_scope answered with a new token, bad credentials refused', async (t) => {
  let calls = 0;
  // The first token is granted pull only, whatever was asked: the push must recover via insufficient_scope.
  const fake = await startFakeRegistry(t, { bearer: { username: 'u', password: 'p', grant: (s) => (calls++ === 0 ? s.replace(/:[^:]*$/, ':pull') : s) } });
  const repo = openRepository({ host: fake.host, name: 'mos/x', credentials: { username: 'u', password: 'p' }, ...FAST });
  const blob = rnd.bytes(300);
  await repo.pushBlob(desc(blob), once1(blob));
  t.ok(fake.blobs.has(digestOf(blob)), 'pushed after the scope was widened');
  t.ok(fake.requests.filter((r) => r.path.startsWith('/token')).length >= 2, 'a second token was fetched');
  t.ok(fake.requests.some((r) => typeof r.headers.authorization === 'string' && r.headers.authorization.startsWith('Bearer ')));
  t.strictSame(await collect(repo.fetchBlob(desc(blob))), blob);

  const bad = openRepository({ host: fake.host, name: 'mos/x', credentials: { username: 'u', password: 'nope-secret' }, ...FAST });
  const err = await bad.resolve('v1').catch((e: Error) => e);
  t.match(err, { code: 'REGISTRY_UNAUTHORIZED', subject: `${fake.origin}/token?…`, message: /credentials were rejected/ });
  t.notMatch(JSON.stringify(err) + String(err), /nope-secret/);
});

t.test('an oversized token response is refused while it streams, not after', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sent = 0;
  let declared = false;
  const fake = await startFakeRegistry(t, {
    bearer: { username: 'u', password: 'p' },
    hook: async (_req, res, url) => {
      if (url.pathname !== '/token') return false;
      if (declared) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 * 1024 * 1024 });
        res.write('{"token":"');
        return true; // the client refuses on the header; the fake's teardown ends the socket
      }
      // Chunked, no length: 64 MiB of JSON whitespace unless the client stops reading.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.on('error', () => {}); // the client hanging up mid-body is the point
      const closed = once(res, 'close');
      while (sent < 64 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) await Promise.race([once(res, 'drain'), closed]);
      }
      res.end();
      return true;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', credentials: { username: 'u', password: 'p' }, ...FAST, retries: 0 });
  await t.rejects(repo.resolve('v1'), { code: 'REGISTRY_PROTOCOL', subject: `${fake.origin}/token?…`, message: /larger than the 1048576-byte limit/ });
  t.ok(sent < 16 * 1024 * 1024, `stopped reading early (${sent} bytes sent)`);
  declared = true;
  const repo2 = openRepository({ host: fake.host, name: 'mos/x', credentials: { username: 'u', password: 'p' }, ...FAST, retries: 0 });
  await t.rejects(repo2.resolve('v1'), { code: 'REGISTRY_PROTOCOL', message: /larger than the 1048576-byte limit/ }, 'a declared length over the cap fails at once');
});

t.test('wrong digest served: OCI_DIGEST_MISMATCH (content and header)', async (t) => {
  const good = rnd.bytes(5000);
  const evil = rnd.bytes(5000);
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (url.pathname === `/v2/mos/x/blobs/${digestOf(good)}`) {
        res.writeHead(200, { 'content-length': evil.length });
        res.end(evil);
        return true;
      }
      return false;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  await t.rejects(collect(repo.fetchBlob(desc(good))), { code: 'OCI_DIGEST_MISMATCH', message: new RegExp(`not ${digestOf(good)}`) });
  const other = fake.putBlob(evil);
  fake.blobs.set(digestOf(good), evil); // the fake now also says Docker-Content-Digest: <good> ... for evil bytes
  t.ok(other);
  const manifestBytes = Buffer.from('{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","config":{},"layers":[]}');
  fake.putManifest(OCI_MANIFEST, manifestBytes, 'v1');
  await t.rejects(repo.fetchBytes({ ...desc(manifestBytes, OCI_MANIFEST), digest: digestOf(evil) }), { code: 'OCI_MANIFEST_UNKNOWN' });
  fake.manifests.set(digestOf(evil), { mediaType: OCI_MANIFEST, bytes: manifestBytes }); // served under the wrong digest
  await t.rejects(repo.fetchBytes({ ...desc(manifestBytes, OCI_MANIFEST), digest: digestOf(evil) }), { code: /OCI_(DIGEST|SIZE)_MISMATCH/ });
});

t.test('truncated body: a clear size error, nothing returned as complete', async (t) => {
  const blob = rnd.bytes(10_000);
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (url.pathname !== `/v2/mos/x/blobs/${digestOf(blob)}`) return false;
      res.writeHead(200, { 'content-length': 4000 });
      res.end(blob.subarray(0, 4000));
      return true;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  await t.rejects(collect(repo.fetchBlob(desc(blob))), { code: 'OCI_SIZE_MISMATCH', message: /4000 of 10000 bytes/ });
  await t.rejects(repo.fetchBytes(desc(blob, OCI_CONFIG)), { code: 'OCI_SIZE_MISMATCH' });
});

t.test('connection reset mid-blob: resumed with Range from the offset reached', async (t) => {
  const blob = rnd.bytes(3 * 1024 * 1024);
  let cut = 0;
  const fake = await startFakeRegistry(t, {
    hook: async (req, res, url) => {
      if (url.pathname !== `/v2/mos/x/blobs/${digestOf(blob)}` || req.headers.range || cut > 0) return false;
      res.writeHead(200, { 'content-length': blob.length });
      cut = 1024 * 1024 + 123;
      await new Promise<void>((r) => res.write(blob.subarray(0, cut), () => r()));
      await new Promise((r) => setTimeout(r, 50));
      res.destroy(); // reset mid-body
      return true;
    },
  });
  fake.putBlob(blob);
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  t.strictSame(await collect(repo.fetchBlob(desc(blob))), blob, 'complete and verified');
  const ranges = fake.requests.filter((r) => r.headers.range).map((r) => r.headers.range as string);
  t.equal(ranges.length, 1);
  const from = Number(/^bytes=(\d+)-$/.exec(ranges[0]!)?.[1]);
  t.ok(from > 0 && from <= cut, `resumed from ${from} (server had sent ${cut})`);
  t.equal(repo.stats.resumes, 1);

  // a registry that always resets: bounded number of resumes, then a clear error
  let n = 0;
  const always = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.startsWith('/v2/mos/x/blobs/sha256:')) return false;
      n++;
      res.writeHead(200, { 'content-length': blob.length });
      res.write(blob.subarray(0, 1000), () => setTimeout(() => res.destroy(), 20));
      return true;
    },
  });
  const r2 = openRepository({ host: always.host, name: 'mos/x', ...FAST, retries: 2 });
  await t.rejects(collect(r2.fetchBlob(desc(blob))), { code: 'REGISTRY_UNREACHABLE', subject: `${always.origin}${blobPath(desc(blob))}` });
  t.equal(n, 3, 'first try + 2 resumes');
});

t.test('429/503 with Retry-After: waited and retried; a too-long Retry-After fails at once', async (t) => {
  let n = 0;
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.includes('/manifests/v1')) return false;
      if (n++ < 2) {
        res.writeHead(n === 1 ? 503 : 429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return true;
      }
      return false;
    },
  });
  const m = fake.putManifest(OCI_MANIFEST, '{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","config":{},"layers":[]}', 'v1');
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  t.equal((await repo.resolve('v1')).digest, m.digest);
  t.equal(n, 3, 'two refusals, then success');

  let k = 0;
  const busy = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.includes('/manifests/')) return false;
      k++;
      res.writeHead(429, { 'retry-after': '3600', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"come back in an hour"}]}');
      return true;
    },
  });
  await t.rejects(openRepository({ host: busy.host, name: 'mos/x', ...FAST }).resolve('v1'), { code: 'REGISTRY_ERROR', message: /Retry-After 3600 s.*TOOMANYREQUESTS: come back in an hour/ });
  t.equal(k, 1, 'no waiting for an hour');
});

t.test('10 MiB manifest: refused at the 4 MiB cap without reading it all', async (t) => {
  const total = 10 * 1024 * 1024;
  let written = 0;
  const fake = await startFakeRegistry(t, {
    hook: async (_req, res, url) => {
      if (url.pathname === '/v2/mos/x/manifests/declared') {
        res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': total });
        res.write(Buffer.alloc(1024, 0x20));
        return true;
      }
      if (url.pathname !== '/v2/mos/x/manifests/big') return false;
      res.writeHead(200, { 'content-type': OCI_MANIFEST }); // chunked: no length to refuse up front
      const piece = Buffer.alloc(64 * 1024, 0x20);
      while (written < total && !res.destroyed) {
        written += piece.length;
        if (!res.write(piece)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      }
      res.end();
      return true;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  await t.rejects(repo.resolve('big'), { code: 'OCI_SIZE_EXCEEDS_LIMIT', message: /4194304-byte limit/ });
  t.ok(written < total, `stopped reading: the server got ${written} of ${total} bytes out`);
  await t.rejects(repo.resolve('declared'), { code: 'OCI_SIZE_EXCEEDS_LIMIT' });
  await t.rejects(repo.fetchBytes({ mediaType: OCI_MANIFEST, digest: digestOf('x'), size: total }), { code: 'OCI_SIZE_EXCEEDS_LIMIT' });
});

t.test('redirect loop: bounded, REGISTRY_PROTOCOL', async (t) => {
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.includes('/blobs/sha256:')) return false;
      res.writeHead(307, { location: url.pathname.endsWith('a') ? url.pathname.slice(0, -1) : `${url.pathname}?a` });
      res.end();
      return true;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  await t.rejects(collect(repo.fetchBlob(desc(Buffer.from('x')))), { code: 'REGISTRY_PROTOCOL', message: /more than 10 redirects/ });
  t.equal(fake.requests.filter((r) => r.path.includes('/blobs/')).length, 11);
});

t.test('redirect to another host: followed without Authorization', async (t) => {
  const blob = rnd.bytes(2000);
  const seen: (string | undefined)[] = [];
  const storage = createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(200, { 'content-length': blob.length });
    res.end(blob);
  });
  storage.listen(0, '127.0.0.1');
  await once(storage, 'listening');
  t.teardown(() => new Promise<void>((r) => (storage.close(() => r()), storage.closeAllConnections())));
  const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}/bucket/blob?sig=abc`;
  const fake = await startFakeRegistry(t, {
    basic: { username: 'u', password: 'p' },
    hook: (req, res, url) => {
      if (url.pathname !== `/v2/mos/x/blobs/${digestOf(blob)}` || !req.headers.authorization) return false;
      res.writeHead(307, { location: storageUrl });
      res.end();
      return true;
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', credentials: { username: 'u', password: 'p' }, ...FAST });
  t.strictSame(await collect(repo.fetchBlob(desc(blob))), blob);
  t.ok(fake.requests.some((r) => r.headers.authorization?.toString().startsWith('Basic ')), 'the registry got credentials');
  t.strictSame(seen, [undefined], 'the other host got no Authorization');
});

t.test('stalled connection: REGISTRY_TIMEOUT after the stall timeout (body and headers)', async (t) => {
  const blob = rnd.bytes(100_000);
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (url.pathname === `/v2/mos/x/blobs/${digestOf(blob)}`) {
        res.writeHead(200, { 'content-length': blob.length });
        res.write(blob.subarray(0, 10_000)); // then nothing, connection kept open
        return true;
      }
      return url.pathname.includes('/manifests/hang'); // never answers at all
    },
  });
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  await t.rejects(collect(repo.fetchBlob(desc(blob))), { code: 'REGISTRY_TIMEOUT', message: /no data for 0.4 s/, subject: `${fake.origin}${blobPath(desc(blob))}` });
  await t.rejects(repo.resolve('hang'), { code: 'REGISTRY_TIMEOUT', message: /no response for 0.8 s/ });
});

t.test('plain HTTP to a non-loopback host is refused before any connection', async (t) => {
  let calls = 0;
  const fetch = (async () => {
    calls++;
    throw new Error('must not be called');
  }) as unknown as typeof globalThis.fetch;
  for (const host of ['registry.example.com', '10.1.2.3:5000', '[fe80::1]:5000']) {
    await t.rejects(openRepository({ host, name: 'mos/x', plainHttp: true, fetch }).resolve('v1'), { code: 'REGISTRY_INSECURE_REFUSED', subject: `http://${host}/v2/`, hint: /--insecure-registry/ });
  }
  t.equal(calls, 0, 'no request was attempted');
  // ... and a redirect into plain HTTP elsewhere is refused the same way, before connecting
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.includes('/blobs/')) return false;
      res.writeHead(302, { location: 'http://10.255.255.1/blob' });
      res.end();
      return true;
    },
  });
  await t.rejects(collect(openRepository({ host: fake.host, name: 'mos/x', ...FAST }).fetchBlob(desc(Buffer.from('y')))), { code: 'REGISTRY_INSECURE_REFUSED', subject: 'http://10.255.255.1/blob' });
  // a host named in insecureHosts may use plain HTTP (routed to the fake by an injected fetch)
  const seenUrls: string[] = [];
  const routed = ((url: string, init: RequestInit) => {
    seenUrls.push(url);
    return globalThis.fetch(url.replace('http://registry.example.com', fake.origin), init);
  }) as unknown as typeof globalThis.fetch;
  const insecure = openRepository({ host: 'registry.example.com', name: 'mos/x', plainHttp: true, insecureHosts: ['registry.example.com'], fetch: routed, ...FAST });
  t.equal(await insecure.exists(desc(Buffer.from('z'), OCI_MANIFEST)), false);
  t.ok(seenUrls.every((u) => u.startsWith('http://registry.example.com/v2/')), 'plain HTTP used for the named insecure host');
  // plain HTTP without the TLS probe is fine for loopback hosts
  t.equal(await openRepository({ host: fake.host, name: 'mos/x', plainHttp: true, ...FAST }).exists(desc(Buffer.from('z'), OCI_MANIFEST)), false);
});

t.test('uploads: Locations kept exactly (query included), chunked, cancelled on a bad stream', async (t) => {
  const fake = await startFakeRegistry(t);
  const repo = openRepository({ host: fake.host, name: 'mos/x', chunkSize: 1000, ...FAST });
  const big = rnd.bytes(3500);
  await repo.pushBlob(desc(big), (async function* () {
    for (let i = 0; i < big.length; i += 333) yield big.subarray(i, i + 333);
  })());
  t.strictSame(fake.blobs.get(digestOf(big)), big);
  t.strictSame(fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.headers['content-range']), ['0-999', '1000-1999', '2000-2999', '3000-3499']);
  // content that does not match its descriptor: refused, upload cancelled, nothing stored
  const claimed = rnd.bytes(2500);
  await t.rejects(repo.pushBlob(desc(claimed), once1(rnd.bytes(2500))), { code: 'OCI_DIGEST_MISMATCH' });
  t.notOk(fake.blobs.has(digestOf(claimed)));
  t.ok(fake.requests.some((r) => r.method === 'DELETE' && r.path.includes('/uploads/')), 'session cancelled');
  await t.rejects(repo.pushBlob(desc(claimed), once1(claimed.subarray(0, 100))), { code: 'OCI_SIZE_MISMATCH' });
});

t.test('Warning: 299 headers are logged once each, never acted on', async (t) => {
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (!url.pathname.includes('/manifests/')) return false;
      res.setHeader('warning', ['299 - "repository is deprecated"', '299 - "repository is deprecated"']);
      return false;
    },
  });
  fake.putManifest(OCI_MANIFEST, '{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","config":{},"layers":[]}', 'v1');
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m) };
  const repo = openRepository({ host: fake.host, name: 'mos/x', log, ...FAST });
  await repo.resolve('v1');
  await repo.resolve('v1');
  t.strictSame(warnings, [`registry ${fake.host}: repository is deprecated`]);
});

t.test('a manifest without a mediaType field keeps the served media type when resolved again by digest', async (t) => {
  const fake = await startFakeRegistry(t);
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  // skopeo pushes manifests like this: the type is only in Content-Type.
  const bytes = JSON.stringify({ schemaVersion: 2, config: { mediaType: OCI_CONFIG, digest: EMPTY_JSON_DIGEST, size: 2 }, layers: [] });
  const d = fake.putManifest(OCI_MANIFEST, bytes, 'v1');
  const byTag = await repo.resolve('v1');
  t.equal(byTag.mediaType, OCI_MANIFEST);
  const byDigest = await repo.resolve(d.digest); // served from the cache
  t.strictSame(byDigest, { mediaType: OCI_MANIFEST, digest: d.digest, size: d.size });
  t.equal(fake.requests.filter((r) => r.path.includes('/manifests/')).length, 1, 'second resolve came from the cache');
});

t.test('a registry that drips bytes is cut off by the minimum rate, and any request by its deadline (hostile input #4)', async (t) => {
  const blob = rnd.bytes(10_000);
  const timers = new Set<NodeJS.Timeout>();
  t.teardown(() => timers.forEach((x) => clearInterval(x)));
  const fake = await startFakeRegistry(t, {
    hook: (_req, res, url) => {
      if (url.pathname !== `/v2/mos/x/blobs/${digestOf(blob)}`) return false;
      res.writeHead(200, { 'content-length': blob.length });
      // One byte every 100 ms: never 0.4 s without data, so the stall timer alone would wait ~17 min.
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= blob.length) return void clearInterval(timer);
        res.write(blob.subarray(i, ++i));
      }, 100);
      timers.add(timer);
      return true;
    },
  });
  // A hang guard, not a speed assertion: without the limits this test would never end.
  const guard = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('hung: no limit was applied')), 20_000).unref())]);
  const slow = openRepository({ host: fake.host, name: 'mos/x', ...FAST, minBytesPerSecond: 100, rateWindowMs: 1_000 });
  await t.rejects(guard(collect(slow.fetchBlob(desc(blob)))), { code: 'REGISTRY_TIMEOUT', message: /B\/s over 1(\.\d)? s, below the minimum of 100 B\/s/ });
  const late = openRepository({ host: fake.host, name: 'mos/x', ...FAST, minBytesPerSecond: 0, requestDeadlineMs: 1_500 });
  await t.rejects(guard(collect(late.fetchBlob(desc(blob)))), { code: 'REGISTRY_TIMEOUT', message: /longer than the 1\.5 s deadline of one request/ });
});

t.test("a registry on one of fetch's 'bad ports' (10080) is reached, as skopeo reaches it", async (t) => {
  let fake: Awaited<ReturnType<typeof startFakeRegistry>>;
  try {
    fake = await startFakeRegistry(t, { port: 10080 });
  } catch (e) {
    t.comment(`skipped: port 10080 on 127.0.0.1 is taken here (${(e as Error).message})`);
    return;
  }
  const blob = rnd.bytes(1000);
  fake.putBlob(blob);
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST });
  t.strictSame(await collect(repo.fetchBlob(desc(blob))), blob);
});

t.test('a download rate cap (--limit-rate) holds for one transfer and for several together', async (t) => {
  const a = rnd.bytes(1024 * 1024);
  const b = rnd.bytes(1024 * 1024);
  const fake = await startFakeRegistry(t);
  fake.putBlob(a);
  fake.putBlob(b);
  // The cap is a functional limit (what a metered link needs), so its effect is checked: the floor is
  // what the budget allows (bytes / rate minus the quarter second of burst), with no upper bound.
  const rate = 1024 * 1024;
  const repo = openRepository({ host: fake.host, name: 'mos/x', ...FAST, maxBytesPerSecond: rate });
  const t0 = Date.now();
  t.strictSame(await collect(repo.fetchBlob(desc(a))), a, 'the blob is whole and verified');
  const one = Date.now() - t0;
  t.ok(one >= 700, `1 MiB at 1 MiB/s took ${one} ms (at least 0.75 s of budget)`);
  const t1 = Date.now();
  const [ra, rb] = await Promise.all([collect(repo.fetchBlob(desc(a))), collect(openRepository({ host: fake.host, name: 'mos/x', ...FAST, maxBytesPerSecond: rate }).fetchBlob(desc(b)))]);
  const two = Date.now() - t1;
  t.ok(ra.equals(a) && rb.equals(b), 'both whole');
  t.ok(two >= 1700, `2 MiB over two repositories at one shared 1 MiB/s took ${two} ms (at least 1.75 s)`);
});
