import { t } from 'tap';
import { mkdirSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { testRandom } from '../support/random.js';
import { startRegistry } from '../support/registry.js';
import { startSlowProxy } from '../support/slow-proxy.js';
import { runCli } from '../support/cli.js';
import { buildBusyboxRootfs } from '../support/lxc.js';
import { conformance, mintApiPki, spawnServer, testClient, waitOperation, type ApiPki } from '../support/api.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { activate, install } from '../../src/machine/index.js';
import { chooseBootGeneration } from '../../src/machine/boot-choice.js';
import { currentGeneration } from '../../src/config/index.js';
import { openLayout } from '../../src/oci/index.js';
import { buildImage } from '../../src/build/index.js';

// A whole remote upgrade as a fleet controller drives it: a real docker-registry (behind a throttling
// proxy, so a download takes seconds and a cancel lands mid-blob), a `mosctl serve` process, plan →
// download → apply, the event journal replayed from a cursor after a disconnect, a cancel during a
// download, an idempotency key used twice, and the CLI client printing what the local CLI prints.
const skip = needs({ root: true, programs: ['docker-registry', 'openssl', 'mksquashfs'] });

interface Op {
  id: string;
  phase: string;
  cancelable: boolean;
  progress?: { bytesDone: number; bytesTotal: number; layersDone: number; layersTotal: number; targets: { name: string; bytesDone: number; bytesTotal: number }[] };
  result?: Record<string, unknown>;
  error?: { code: string; retryable: boolean };
}

/** Reads a Server-Sent Events stream until `stop(events)` says so; returns the events seen. */
function readSse(url: string, api: ApiPki, cert: { cert: string; key: string }, opts: { after?: number; lastEventId?: number }, stop: (evs: { seq: number; type: string; operation?: Op }[]) => boolean): Promise<{ seq: number; type: string; operation?: Op }[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca: readFileSync(api.serverCa), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost' });
    const events: { seq: number; type: string; operation?: Op }[] = [];
    let buf = '';
    let headerDone = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`event stream: no end after 60 s (${events.length} events)`));
    }, 60_000);
    s.on('secureConnect', () => {
      const q = opts.after !== undefined ? `?after=${opts.after}` : '';
      s.write(`GET /v1/events${q} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n${opts.lastEventId !== undefined ? `Last-Event-ID: ${opts.lastEventId}\r\n` : ''}\r\n`);
    });
    s.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      if (!headerDone) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        headerDone = true;
        buf = buf.slice(i + 4);
      }
      // Chunked transfer: only the data lines matter here.
      for (const m of buf.matchAll(/^data: (.*)$/gm)) {
        try {
          const ev = JSON.parse(m[1]!) as { seq: number; type: string; operation?: Op };
          if (!events.some((e) => e.seq === ev.seq)) events.push(ev);
        } catch {
          /* a line split across chunks: read again with the next chunk */
          continue;
        }
      }
      const last = buf.lastIndexOf('\n\n');
      if (last >= 0) buf = buf.slice(last + 2);
      if (stop(events)) {
        clearTimeout(timer);
        s.destroy();
        resolve(events);
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

t.test('a remote upgrade through mosctl serve', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-api-upgrade-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  // Two big fs-only images of incompressible bytes: a download of one takes seconds through the proxy.
  const rnd = testRandom('serve-upgrade');
  const store = await openLayout(images.layout);
  for (const name of ['bulk-1', 'bulk-2']) {
    const tree = join(work, 'trees', name);
    buildBusyboxRootfs(tree);
    mkdirSync(join(tree, 'share'), { recursive: true });
    writeFileSync(join(tree, 'share', 'blob.bin'), rnd.bytes(4 * 1024 * 1024));
    await buildImage({ rootfs: tree, dst: store, tag: name });
  }
  const bulk = (n: 1 | 2) => `  - {service_name: bulk${n}, source: "oci:${images.layout}:bulk-${n}", version: "1.0.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`;
  const reg = await startRegistry(t);
  const pub = (name: string, targets: string[], updateType: 'complete' | 'partial' = 'complete') =>
    publishYaml({ dir: work, yaml: manifestYaml({ targets, updateType }), repo: reg.host, name, pki });
  await pub('machine/install:1.0', [T.hostfs(images), T.data(images)]);
  await pub('machine/install:2.0', [T.hostfs(images, '1.1'), T.data(images), bulk(1)]);
  await pub('machine/install:bulk2', [bulk(2)], 'partial');
  const proxy = await startSlowProxy(t, reg.host, 0);
  const via = (tag: string) => `${proxy.host}/machine/install:${tag}`;

  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: `${reg.host}/machine/install:1.0` });
  await activate({ root, target: 'data' });

  const api = await mintApiPki(join(work, 'api'));
  const admin = await api.client('fleet-controller', { orgs: ['mos:admin'] });
  const server = await spawnServer(t, { root, api });
  const c = testClient(t, server.url, api, admin);
  const remote = ['--server', server.url, '--cert', admin.cert, '--key', admin.key, '--ca', api.serverCa];

  await t.test('the CLI client prints what the local CLI prints', async (t) => {
    for (const cmd of [['status'], ['history'], ['status', '--json'], ['history', '--json']]) {
      const local = await runCli('mosctl', ['--root', root, ...cmd]);
      const viaApi = await runCli('mosctl', [...remote, ...cmd]);
      t.equal(viaApi.code, 0, `${cmd.join(' ')} via --server: ${viaApi.stderr}`);
      t.equal(viaApi.stdout, local.stdout, `${cmd.join(' ')}: same output`);
    }
    const bad = await runCli('mosctl', [...remote, 'fsck']);
    t.equal(bad.code, 2, 'a command that runs only on the machine is a usage error with --server');
    t.match(bad.stderr, /fsck runs on the machine itself/);
    const noKey = await runCli('mosctl', ['--server', server.url, '--cert', admin.cert, 'status']);
    t.equal(noKey.code, 2);
    t.match(noKey.stderr, /--server: needs --key, --ca/);
  });

  const cursor0 = Number(((await c.call('GET', '/v1/events')).text.trim().split('\n').map((l) => JSON.parse(l) as { seq: number }).pop() ?? { seq: 0 }).seq);

  let planId = '';
  await t.test('plan: per-target diff, bytes to fetch and checks; nothing written', async (t) => {
    const before = readdirSync(join(root, 'atomfs-store', 'mos', 'blobs', 'sha256')).length;
    const a = await c.call('POST', '/v1/plans', { source: via('2.0') });
    t.equal(a.status, 200, a.text);
    t.same(conformance('POST', '/v1/plans', a), []);
    const p = a.json as Record<string, unknown> & { id: string; bytesToFetch: number; fetch: { target: string; bytes: number }[] };
    t.match(p, { added: [{ name: 'bulk1' }], changed: [{ name: 'hostfs', from: '1.0.0', to: '1.1.0' }], unchanged: [{ name: 'data' }], rebootRequired: true, requiredRole: 'mos:admin' });
    t.match(p, { checks: { signature: 'ok', product: 'ok', downgrade: 'ok', diskSpace: { ok: true } } });
    t.ok(p.bytesToFetch > 4 * 1024 * 1024, `${p.bytesToFetch} bytes to fetch`);
    t.same(p.fetch.map((f) => f.target).sort(), ['bulk1', 'hostfs']);
    t.equal(readdirSync(join(root, 'atomfs-store', 'mos', 'blobs', 'sha256')).length, before, 'the store is untouched');
    t.equal((await currentGeneration({ root })).number, 1);
    planId = p.id;
  });

  let downloadId = '';
  await t.test('download from the plan, with an idempotency key used twice; a second mutation is 409', async (t) => {
    proxy.rate = 2 * 1024 * 1024; // ~2-3 s for the plan's bytes
    const body = { planId, mode: 'download', idempotencyKey: 'window-42' };
    const first = await c.call('POST', '/v1/operations', body);
    t.equal(first.status, 202, first.text);
    t.same(conformance('POST', '/v1/operations', first), []);
    downloadId = (first.json as Op).id;
    t.equal(first.headers['location'], `/v1/operations/${downloadId}`);
    const again = await c.call('POST', '/v1/operations', body);
    t.equal(again.status, 200, 'the same key and request: the same operation, not a new one');
    t.equal((again.json as Op).id, downloadId);
    const other = await c.call('POST', '/v1/operations', { ...body, mode: 'apply' });
    t.equal(other.status, 409, 'the same key with another request is refused');
    t.match(other.json, { error: { code: 'API_IDEMPOTENCY_CONFLICT' } });
    const busy = await c.call('POST', '/v1/rollback', {});
    t.equal(busy.status, 409, busy.text);
    t.match(busy.json, { error: { code: 'API_BUSY', subject: `operation ${downloadId}` } });
    t.same(conformance('POST', '/v1/rollback', busy), []);
  });

  await t.test('events: a client that disconnects mid-way resumes from its cursor and misses nothing', async (t) => {
    // First connection: replay from before the plan, leave at the first progress event.
    const part1 = await readSse(server.url, api, admin, { after: cursor0 }, (evs) => evs.some((e) => e.type === 'operation.progress'));
    const last1 = part1[part1.length - 1]!.seq;
    // Reconnect with Last-Event-ID (as an EventSource does) and read until the download ends.
    const part2 = await readSse(server.url, api, admin, { lastEventId: last1 }, (evs) => evs.some((e) => e.operation?.id === downloadId && e.operation.phase === 'downloaded'));
    const seqs = [...part1, ...part2].map((e) => e.seq);
    t.same(seqs, Array.from({ length: seqs.length }, (_, i) => cursor0 + 1 + i), `contiguous sequence ${seqs[0]}…${seqs[seqs.length - 1]}: nothing missed, nothing twice`);
    const phases = [...part1, ...part2].filter((e) => e.operation?.id === downloadId && e.type !== 'operation.progress').map((e) => e.operation!.phase);
    t.same(phases, ['queued', 'verifying', 'downloading', 'downloaded']);
    const lastProgress = [...part1, ...part2].filter((e) => e.type === 'operation.progress').pop()!.operation!.progress!;
    t.equal(lastProgress.bytesDone, lastProgress.bytesTotal, 'progress reaches its total');
    t.ok(lastProgress.targets.every((x) => x.bytesDone === x.bytesTotal));
    const op = (await c.call('GET', `/v1/operations/${downloadId}`)).json as Op;
    t.equal(op.phase, 'downloaded');
    t.equal((await currentGeneration({ root })).number, 1, 'a download commits nothing');
  });

  await t.test('apply the same plan: nothing more is fetched; the new generation is committed', async (t) => {
    proxy.rate = 0;
    const a = await c.call('POST', '/v1/operations', { planId, mode: 'apply' });
    t.equal(a.status, 202, a.text);
    const op = await waitOperation(c, (a.json as Op).id, (o) => !['queued', 'verifying', 'downloading', 'applying'].includes(o.phase));
    t.equal(op.phase, 'committed', JSON.stringify(op.error ?? {}));
    t.match(op.result, { generation: 2, blobBytes: 0, mode: 'apply', rebootRequired: true, live: { restarted: [], stopped: [], failed: [] } });
    t.same(conformance('GET', `/v1/operations/${op['id']}`, { status: 200, headers: {}, text: '', json: op }), []);
    t.equal((await currentGeneration({ root })).number, 2);
  });

  await t.test('boot assessment through the API: the vote of a workload, every boot event in the journal', async (t) => {
    type Ev = { seq: number; type: string; boot?: { line: number; event: string; generation: number; detail?: string } };
    const apps = testClient(t, server.url, api, await api.client('orders-service', { orgs: ['mos:apps'] }));
    const reader = testClient(t, server.url, api, await api.client('dashboard', { orgs: ['mos:reader'] }));
    const b = await reader.call('GET', '/v1/boot');
    t.equal(b.status, 200, b.text);
    t.same(conformance('GET', '/v1/boot', b), []);
    t.match(b.json, { good: { generation: 1 }, trial: { generation: 2, state: 'pending', left: 2 } }, 'the committed generation 2 waits for its first boot');
    const early = await apps.call('POST', '/v1/boot/vote', { good: true });
    t.equal(early.status, 422, 'no vote before the generation has booted');
    t.match(early.json, { error: { code: 'INPUT_INVALID', message: /has not booted yet/ } });
    // The machine reboots into generation 2: the initrd counts a try (the same function create-boot-fs runs).
    await chooseBootGeneration(root);
    t.equal((await reader.call('POST', '/v1/boot/vote', { good: true })).status, 403, 'mos:reader may not vote');
    const bad = await apps.call('POST', '/v1/boot/vote', { good: 'yes' });
    t.equal(bad.status, 400, 'a malformed vote is refused');
    t.same(conformance('POST', '/v1/boot/vote', bad), []);
    const v = await apps.call('POST', '/v1/boot/vote', { good: true, reason: 'orders flow healthy' });
    t.equal(v.status, 200, v.text);
    t.same(conformance('POST', '/v1/boot/vote', v), []);
    t.match(v.json, { trial: { generation: 2, state: 'trying', vote: { good: true, by: /orders-service/, reason: 'orders flow healthy' } } });
    // The journal takes in the boot-event log, which other processes (initrd, mosctl assess) append to.
    let boots: Ev['boot'][] = [];
    for (let i = 0; i < 50 && !boots.some((e) => e?.event === 'vote'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      const evs = (await reader.call('GET', '/v1/events')).text.trim().split('\n').map((l) => JSON.parse(l) as Ev);
      boots = evs.filter((e) => e.type === 'boot').map((e) => e.boot);
    }
    t.same(boots.map((e) => `${e?.line} ${e?.event}:${e?.generation}`), ['1 good:1', '2 pending:2', '3 trying:2', '4 vote:2'], 'each boot event once, in order, with its line in the log');
    t.match(boots[3]?.detail, /good by .*orders-service.*: orders flow healthy/);
  });

  await t.test('cancel during a download: the old generation stays current, the ingest is empty', async (t) => {
    proxy.rate = 256 * 1024; // the 4 MiB layer takes ~16 s
    const a = await c.call('POST', '/v1/operations', { source: via('bulk2'), mode: 'apply' });
    t.equal(a.status, 202, a.text);
    const id = (a.json as Op).id;
    await waitOperation(c, id, (o) => o.phase === 'downloading' && (o.progress?.bytesDone ?? 0) > 0);
    const ingest = join(root, 'atomfs-store', 'mos', 'ingest');
    t.ok(readdirSync(ingest).length > 0, 'a blob is being written when the cancel arrives');
    const appsClient = testClient(t, server.url, api, await api.client('app-team', { orgs: ['mos:apps'] }));
    const refused = await appsClient.call('POST', `/v1/operations/${id}/cancel`);
    t.equal(refused.status, 403, 'mos:apps may not cancel what only mos:admin may start');
    t.match(refused.json, { error: { code: 'API_FORBIDDEN', message: /started by mos:admin/ } });
    const cancel = await c.call('POST', `/v1/operations/${id}/cancel`);
    t.equal(cancel.status, 202, cancel.text);
    t.same(conformance('POST', `/v1/operations/${id}/cancel`, cancel), []);
    const op = (await waitOperation(c, id, (o) => o.phase === 'canceled' || o.phase === 'failed', 30_000)) as unknown as Op;
    t.equal(op.phase, 'canceled');
    t.match(op.error, { code: 'CANCELED', retryable: true });
    t.equal(op.cancelable, false);
    t.equal((await currentGeneration({ root })).number, 2, 'generation 2 is still current');
    t.same(readdirSync(ingest), [], 'no partial file is left');
    const late = await c.call('POST', `/v1/operations/${id}/cancel`);
    t.equal(late.status, 409, 'a finished operation cannot be canceled');
    t.match(late.json, { error: { code: 'API_NOT_CANCELABLE' } });
  });

  await t.test('the CLI client runs an update to the end and prints the local text', async (t) => {
    proxy.rate = 0;
    const r = await runCli('mosctl', [...remote, 'update', via('bulk2'), '--mode', 'stage']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^updated to generation 3 \([0-9a-f]{12}\); fetched \d+ blob bytes\nCHANGE +TARGET +VERSION\nadded +bulk2/);
    t.match(r.stdout, /next: running targets still run their old images/);
    const dry = await runCli('mosctl', [...remote, 'update', via('2.0'), '--dry-run']);
    t.equal(dry.code, 0, dry.stderr);
    t.match(dry.stdout, /^would update \(dry run; nothing written\): 0 bytes to fetch, \d+ free\nCHANGE +TARGET +VERSION\nremoved +bulk2 +1\.0\.0\n/, 'the complete 2.0 would drop bulk2; its images are all here');
    const rb = await runCli('mosctl', [...remote, 'rollback', '--to', '2']);
    t.equal(rb.code, 0, rb.stderr);
    t.equal(rb.stdout, 'rolled back to generation 2: now generation 4 (' + (await currentGeneration({ root })).oid.slice(0, 12) + ')\n');
    const gone = await runCli('mosctl', [...remote, 'rollback', '--to', '99']);
    t.equal(gone.code, 6, 'a remote error keeps its exit code');
    t.match(gone.stderr, /^mosctl: generation 99: no such generation \(1-4\)/);
    const audit = await runCli('mosctl', ['--root', root, 'audit']);
    t.match(audit.stdout, /mos:admin +O=mos:admin, CN=fleet-controller +rollback to 2 +202/);
  });
  t.ok(existsSync(join(root, 'config', 'events.jsonl')) && existsSync(join(root, 'config', 'audit.jsonl')));
});
