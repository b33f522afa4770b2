// Upgrade API benchmark (issue: `mosctl serve`). N concurrent mutual-TLS clients (default 200), each on
// its own keep-alive connection, GET /v1/status as fast as answers come for S seconds (default 20)
// while one download operation runs (a 64 MiB image pulled through a proxy paced to last the window).
// The peer, measured in the same run with the same load generator, certificates and TLS settings: a
// bare Node `https` server returning a fixed body of the same size. Both servers run as their own
// process; peak RSS is the kernel's VmHWM of that process.
// Prints requests, errors, p50/p99 latency and peak RSS of each, and p99 mosctl / p99 bare (goal <= 3).
// Run as root: npm run build && npx tsx bench/api.ts [--clients N] [--seconds S]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { openLayout } from '../src/oci/index.js';
import { buildImage, createKeyset, createProject, publish } from '../src/build/index.js';
import { install } from '../src/machine/index.js';
import { mintApiPki } from '../test/support/api.js';
import { startSlowProxy } from '../test/support/slow-proxy.js';
import { busyboxTree, freePort, startBenchRegistry } from './support.js';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '200' }, seconds: { type: 'string', default: '20' } } });
const CLIENTS = Number(values.clients);
const SECONDS = Number(values.seconds);
const top = fileURLToPath(new URL('..', import.meta.url));
const mosctl = join(top, 'dist', 'cmd', 'mosctl.js');
if (process.getuid?.() !== 0) throw new Error('run as root (install mounts nothing, but the store and config are root-owned like a machine)');

const teardowns: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

/** Peak resident set (VmHWM) of a process, in MiB. */
function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Starts a server process and resolves once its log shows the URL. */
async function startProcess(argv: readonly string[], ready: RegExp): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  teardowns.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const on = (b: Buffer) => {
      log += b.toString();
      const m = ready.exec(log);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (c) => reject(new Error(`${argv.join(' ')} exited ${c}:\n${log}`)));
  });
  return { child, url };
}

interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** CLIENTS keep-alive connections, each sending GET `path` back to back for SECONDS. */
async function load(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }, path: string): Promise<LoadResult> {
  const agents = Array.from({ length: CLIENTS }, () => new Agent({ connect: { ...tls, servername: 'localhost' }, connections: 1, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 }));
  const lat: number[] = [];
  let errors = 0;
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    agents.map(async (dispatcher) => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          const res = await request(new URL(path, url), { dispatcher });
          await res.body.arrayBuffer();
          if (res.statusCode !== 200) errors++;
          else lat.push(performance.now() - t0);
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }),
  );
  await Promise.all(agents.map((a) => a.close()));
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { requests: lat.length, errors, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? NaN };
}

const BARE = `
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
const [cert, key, ca, bodyFile] = process.argv.slice(1);
const body = readFileSync(bodyFile);
const server = createServer({ cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => console.log('bare https://127.0.0.1:' + server.address().port));
`;

const work = await mkdtemp('/var/tmp/mosctl-bench-api-');
try {
  const registry = await startBenchRegistry(work);
  teardowns.push(() => registry.stop());
  const dataHome = join(work, 'keys');
  await createKeyset({ name: 'bench', dataHome });
  const project = await createProject({ keyset: 'bench', project: 'rel', dataHome });
  const layout = join(work, 'images');
  const store = await openLayout(layout, { create: true });
  await buildImage({ rootfs: busyboxTree(work, 'hostfs', { 'etc/os-release': 'VERSION=1\n' }), dst: store, tag: 'hostfs' });
  await buildImage({ rootfs: busyboxTree(work, 'data', { 'share/data.txt': 'data\n' }), dst: store, tag: 'data' });
  await buildImage({ rootfs: busyboxTree(work, 'bulk', { 'share/bulk.bin': randomBytes(64 * 1024 * 1024) }), dst: store, tag: 'bulk' });
  const manifest = (name: string, type: string, targets: string[]) => {
    const file = join(work, `${name}.yaml`);
    writeFileSync(file, ['version: 1', 'product: bench-api', `update_type: ${type}`, 'targets:', ...targets].join('\n') + '\n');
    return publish({ manifestFile: file, repo: registry.host, name: `machine/install:${name}`, cert: project.cert, key: project.key });
  };
  const target = (name: string, tag: string, type: string) => `  - {service_name: ${name}, source: "oci:${layout}:${tag}", version: "1.0.0", service_type: ${type}, network: {type: ${type === 'hostfs' ? 'host' : 'none'}}, nsgroup: ""}`;
  const r1 = await manifest('1', 'complete', [target('hostfs', 'hostfs', 'hostfs'), target('data', 'data', 'fs-only')]);
  await manifest('bulk', 'partial', [target('bulk', 'bulk', 'fs-only')]);
  const root = join(work, 'root');
  mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
  copyFileSync(project.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
  await install({ root, source: r1.reference });

  const api = await mintApiPki(join(work, 'api'));
  const reader = await api.client('bench-reader', { orgs: ['mos:admin'] });
  const tls = { ca: readFileSync(api.serverCa), cert: readFileSync(reader.cert), key: readFileSync(reader.key) };
  // The download lasts the load window: 64 MiB paced to finish about when the window closes.
  const proxy = await startSlowProxy(scope, registry.host, Math.ceil((64 * 1024 * 1024) / (SECONDS + 5)));

  const port = await freePort();
  const server = await startProcess(
    [process.execPath, mosctl, '--root', root, 'serve', '--listen', `127.0.0.1:${port}`, '--tls-cert', api.server.cert, '--tls-key', api.server.key, '--client-ca', api.clientCa, '--rate-limit', '1000000', '--max-connections', String(CLIENTS + 16)],
    /"url":"(https:\/\/[^"]+)"/,
  );
  const statusBody = Buffer.from(JSON.stringify((await (await request(new URL('/v1/status', server.url), { dispatcher: new Agent({ connect: { ...tls, servername: 'localhost' } }) })).body.json()) as object));
  const bodyFile = join(work, 'status.json');
  writeFileSync(bodyFile, statusBody);
  const bare = await startProcess([process.execPath, '--input-type=module', '-e', BARE, api.server.cert, api.server.key, api.clientCa, bodyFile], /bare (https:\/\/\S+)/);

  // The bare server first (no download), then mosctl with a download running.
  const bareResult = await load(bare.url, tls, '/v1/status');
  const bareRss = peakRssMiB(bare.child.pid!);
  const admin = new Agent({ connect: { ...tls, servername: 'localhost' } });
  const op = (await (await request(new URL('/v1/operations', server.url), { dispatcher: admin, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: `${proxy.host}/machine/install:bulk`, mode: 'download' }) })).body.json()) as { id: string };
  const mosResult = await load(server.url, tls, '/v1/status');
  const after = (await (await request(new URL(`/v1/operations/${op.id}`, server.url), { dispatcher: admin })).body.json()) as { phase: string; progress?: { bytesDone: number; bytesTotal: number } };
  const mosRss = peakRssMiB(server.child.pid!);
  await admin.close();

  const row = (name: string, r: LoadResult, rss: number) =>
    `${name.padEnd(22)} ${String(r.requests).padStart(8)} ${(r.requests / SECONDS).toFixed(0).padStart(7)} ${String(r.errors).padStart(6)} ${r.p50.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)} ${r.max.toFixed(1).padStart(8)} ${rss.toFixed(0).padStart(8)}`;
  console.log(`${CLIENTS} mutual-TLS clients, GET /v1/status for ${SECONDS} s each (body ${statusBody.length} bytes)`);
  console.log(`${'server'.padEnd(22)} ${'requests'.padStart(8)} ${'req/s'.padStart(7)} ${'errors'.padStart(6)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)} ${'RSS MiB'.padStart(8)}`);
  console.log(row('bare node https', bareResult, bareRss));
  console.log(row('mosctl serve + download', mosResult, mosRss));
  console.log(`download during the load: ${after.phase}, ${after.progress?.bytesDone ?? 0}/${after.progress?.bytesTotal ?? 0} bytes`);
  console.log(`p99 ratio mosctl/bare: ${(mosResult.p99 / bareResult.p99).toFixed(2)} (goal <= 3); p50 ratio ${(mosResult.p50 / bareResult.p50).toFixed(2)}; errors ${mosResult.errors} (goal 0)`);
} finally {
  for (const fn of teardowns.reverse()) await fn();
  await rm(work, { recursive: true, force: true });
}
