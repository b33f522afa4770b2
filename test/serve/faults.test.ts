import { t } from 'tap';
import { connect, type TLSSocket } from 'node:tls';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { testRandom } from '../support/random.js';
import { startRegistry } from '../support/registry.js';
import { startSlowProxy } from '../support/slow-proxy.js';
import { buildBusyboxRootfs } from '../support/lxc.js';
import { conformance, mintApiPki, spawnServer, testClient, waitOperation, type ApiPki, type CertFiles } from '../support/api.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { install } from '../../src/machine/index.js';
import { currentGeneration, readGeneration } from '../../src/config/index.js';
import { openLayout } from '../../src/oci/index.js';
import { buildImage } from '../../src/build/index.js';
import { startServer } from '../../src/serve/index.js';
import { silentLogger } from '../../src/base/index.js';
import { mkdirSync, writeFileSync } from 'node:fs';

// Faults of the upgrade API: the server SIGKILLed mid-download and at the commit point (the operation
// reads `interrupted` after a restart, with the true state of the machine), hostile requests (too
// large, malformed, unknown fields, wrong media type), a slowloris client cut off by the header
// timeout while others are served, and the per-certificate rate limit.
const skip = needs({ root: true, programs: ['docker-registry', 'openssl', 'mksquashfs'] });

interface Op {
  id: string;
  phase: string;
  manifest?: string;
  interrupted?: { during: string; generation: number; committed: boolean; message: string };
  error?: { code: string };
}

/** Opens a TLS connection as `cert` and returns the socket once the handshake is done. */
function tlsSocket(url: string, api: ApiPki, cert: CertFiles): Promise<TLSSocket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca: readFileSync(api.serverCa), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost' });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

t.test('upgrade API faults', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-api-faults-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const store = await openLayout(images.layout);
  const tree = join(work, 'trees', 'bulk');
  buildBusyboxRootfs(tree);
  mkdirSync(join(tree, 'share'), { recursive: true });
  writeFileSync(join(tree, 'share', 'blob.bin'), testRandom('serve-faults').bytes(4 * 1024 * 1024));
  await buildImage({ rootfs: tree, dst: store, tag: 'bulk-1' });
  const reg = await startRegistry(t);
  await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: reg.host, name: 'machine/install:1.0', pki });
  await publishYaml({
    dir: work,
    yaml: manifestYaml({ updateType: 'partial', targets: [`  - {service_name: bulk, source: "oci:${images.layout}:bulk-1", version: "1.0.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`] }),
    repo: reg.host,
    name: 'machine/install:bulk',
    pki,
  });
  await publishYaml({ dir: work, yaml: manifestYaml({ updateType: 'partial', targets: [T.extra(images)] }), repo: reg.host, name: 'machine/install:extra', pki });
  const proxy = await startSlowProxy(t, reg.host, 0);
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: `${reg.host}/machine/install:1.0` });
  const api = await mintApiPki(join(work, 'api'));
  const admin = await api.client('admin', { orgs: ['mos:admin'] });

  await t.test('SIGKILL mid-download: after a restart the operation reads interrupted, nothing committed', async (t) => {
    const server = await spawnServer(t, { root, api });
    const c = testClient(t, server.url, api, admin);
    proxy.rate = 128 * 1024;
    const a = await c.call('POST', '/v1/operations', { source: `${proxy.host}/machine/install:bulk`, mode: 'apply' });
    t.equal(a.status, 202, a.text);
    const id = (a.json as Op).id;
    await waitOperation(c, id, (o) => o.phase === 'downloading' && (o.progress?.bytesDone ?? 0) > 0);
    await c.close();
    await server.stop('SIGKILL');
    proxy.rate = 0;
    const again = await spawnServer(t, { root, api });
    const c2 = testClient(t, again.url, api, admin);
    const op = (await c2.call('GET', `/v1/operations/${id}`)).json as Op;
    t.equal(op.phase, 'interrupted');
    t.match(op.interrupted, { during: 'downloading', generation: 1, committed: false, message: /nothing was committed/ });
    t.equal((await currentGeneration({ root })).number, 1);
    const evs = (await c2.call('GET', '/v1/events')).text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; operation?: Op });
    t.ok(evs.some((e) => e.operation?.id === id && e.operation.phase === 'interrupted'), 'the journal says so too');
    const bootLines = (evs as { type: string; boot?: { line: number } }[]).filter((e) => e.type === 'boot').map((e) => e.boot!.line);
    t.ok(bootLines.length > 0 && bootLines.every((l, i) => l === i + 1), `after a restart each boot event is journaled once (lines ${bootLines.join(' ')})`);
    // The same request again succeeds and fetches what is missing.
    const retry = await c2.call('POST', '/v1/operations', { source: `${proxy.host}/machine/install:bulk`, mode: 'stage' });
    const done = (await waitOperation(c2, (retry.json as Op).id, (o) => !['queued', 'verifying', 'downloading', 'applying'].includes(o.phase))) as unknown as Op;
    t.equal(done.phase, 'staged', JSON.stringify(done.error ?? {}));
    await again.stop();
  });

  await t.test('SIGKILL at the commit point: the record tells which generation is current', async (t) => {
    const server = await spawnServer(t, { root, api });
    const c = testClient(t, server.url, api, admin);
    const before = (await currentGeneration({ root })).number;
    const a = await c.call('POST', '/v1/operations', { source: `${reg.host}/machine/install:extra`, mode: 'stage' });
    const id = (a.json as Op).id;
    // Kill as soon as the journal shows `applying`: the commit may or may not have landed.
    for (let i = 0; i < 600; i++) {
      const evs = (await c.call('GET', `/v1/events`)).text;
      if (evs.includes(`"id":"${id}","action":"update","phase":"applying"`) || evs.includes(`"id":"${id}","action":"update","phase":"staged"`)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.close();
    await server.stop('SIGKILL');
    const again = await spawnServer(t, { root, api });
    const c2 = testClient(t, again.url, api, admin);
    const op = (await c2.call('GET', `/v1/operations/${id}`)).json as Op;
    const head = await readGeneration({ root });
    const committed = head.number > before && op.manifest !== undefined && head.files.has(`${op.manifest}.json`);
    t.ok(['interrupted', 'staged'].includes(op.phase), `the operation reads ${op.phase}`);
    if (op.phase === 'interrupted') {
      t.equal(op.interrupted!.committed, committed, `interrupted after ${op.interrupted!.during}; committed=${committed}: ${op.interrupted!.message}`);
      t.equal(op.interrupted!.generation, head.number);
    } else t.ok(committed, 'staged means the new generation is current');
    t.ok(head.number === before || head.number === before + 1, 'old or new generation, nothing in between');
    await again.stop();
  });

  await t.test('hostile and malformed requests: one clear error each, nothing changes', async (t) => {
    const server = await startServer({
      root, port: 0, certFile: api.server.cert, keyFile: api.server.key, clientCaFile: api.clientCa, log: silentLogger,
      limits: { headersTimeoutMs: 1500, requestTimeoutMs: 3000, idleTimeoutMs: 3000, rateMax: 1000 },
    });
    t.teardown(() => server.close());
    const c = testClient(t, server.url, api, admin);
    const gen = (await currentGeneration({ root })).number;
    const cases: [string, string, string | undefined, Record<string, string>, number, RegExp][] = [
      ['oversized body', '/v1/plans', JSON.stringify({ source: 'x'.repeat(70 * 1024) }), {}, 413, /larger than 65536 bytes/],
      ['not JSON', '/v1/plans', '{"source": ', {}, 400, /./],
      ['unknown field', '/v1/plans', JSON.stringify({ source: 'a/b:c', extra: 1 }), {}, 400, /additional properties/],
      ['wrong type', '/v1/operations', JSON.stringify({ source: 'a/b:c', mode: 'everything' }), {}, 400, /mode/],
      ['both planId and source', '/v1/operations', JSON.stringify({ source: 'a/b:c', planId: '00000000-0000-0000-0000-000000000000', mode: 'stage' }), {}, 400, /exactly one of planId and source/],
      ['unknown plan', '/v1/operations', JSON.stringify({ planId: '00000000-0000-0000-0000-000000000000', mode: 'stage' }), {}, 404, /no such plan/],
      ['text/plain body', '/v1/plans', 'source=x', { 'content-type': 'text/plain' }, 415, /application\/json/],
      ['a bad source reference', '/v1/plans', JSON.stringify({ source: 'not a reference' }), {}, 422, /./],
      ['rollback to generation 0', '/v1/rollback', JSON.stringify({ to: 0 }), {}, 400, /to/],
    ];
    for (const [what, path, body, headers, status, message] of cases) {
      const a = await c.call('POST', path, body, { 'content-type': 'application/json', ...headers });
      t.equal(a.status, status, `${what}: ${a.status} ${a.text.slice(0, 200)}`);
      t.match(a.json, { error: { code: /^[A-Z_]+$/, message } }, `${what}: one error naming what is wrong`);
      t.same(conformance('POST', path, a), [], `${what}: documented`);
    }
    const nf = await c.call('GET', '/v1/nothing-here');
    t.equal(nf.status, 404);
    t.match(nf.json, { error: { code: 'API_REQUEST_INVALID', message: 'no such endpoint' } });
    t.equal((await currentGeneration({ root })).number, gen, 'nothing was committed');
    t.same(readdirSync(join(root, 'atomfs-store', 'mos', 'ingest')), []);

    await t.test('slowloris: a client dribbling its headers is cut off; others are served meanwhile', async (t) => {
      const slow = await tlsSocket(server.url, api, admin);
      slow.resume();
      const closed = new Promise<number>((resolve) => slow.on('close', () => resolve(Date.now())));
      const start = Date.now();
      slow.write('GET /v1/status HTTP/1.1\r\nHost: localhost\r\n');
      const drip = setInterval(() => slow.writable && slow.write('X'), 200);
      const served: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const a = await c.call('GET', '/v1/status');
        if (a.status === 200) served.push(Date.now() - t0);
        await new Promise((r) => setTimeout(r, 100));
      }
      const end = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 15_000))]);
      clearInterval(drip);
      slow.destroy();
      t.equal(served.length, 5, `other clients answered meanwhile (${served.join(', ')} ms)`);
      t.ok(end - start < 6000, `the slow connection was dropped after ${end - start} ms (header timeout 1.5 s)`);
    });

    await t.test('an idle TLS connection that sends nothing is dropped too', async (t) => {
      const idle = await tlsSocket(server.url, api, admin);
      idle.resume(); // read what the server sends, so its close is seen
      const start = Date.now();
      const closed = await Promise.race([
        new Promise<boolean>((resolve) => idle.on('close', () => resolve(true))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
      ]);
      idle.destroy();
      t.ok(closed, `dropped after ${Date.now() - start} ms (header timeout 1.5 s, idle timeout 3 s)`);
    });
  });

  await t.test('the rate limit per client certificate answers 429 with Retry-After', async (t) => {
    const server = await startServer({
      root, port: 0, certFile: api.server.cert, keyFile: api.server.key, clientCaFile: api.clientCa, log: silentLogger,
      limits: { rateMax: 5, rateWindowMs: 60_000 },
    });
    t.teardown(() => server.close());
    const c = testClient(t, server.url, api, admin);
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 7; i++) {
      last = await c.call('GET', '/v1/status');
      statuses.push(last.status);
    }
    t.same(statuses, [200, 200, 200, 200, 200, 429, 429]);
    t.match(last!.headers['retry-after'], /^\d+$/);
    t.match(last!.json, { error: { code: 'API_RATE_LIMITED', retryable: true } });
    t.same(conformance('GET', '/v1/status', last!), []);
    const other = testClient(t, server.url, api, await api.client('another', { orgs: ['mos:reader'] }));
    t.equal((await other.call('GET', '/v1/status')).status, 200, 'another certificate has its own budget');
  });
});
