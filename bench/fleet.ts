// Fleet benchmark (issue 14): 50 machine roots updating through one pull-through cache (Debian's
// docker-registry in proxy mode, named as a mirror in registries.conf) in front of one upstream
// docker-registry, and the same 50 against the upstream directly, in the same run. Prints the bytes the
// upstream served for each group (goal through the cache: one copy of what the release adds, <= 1.05x),
// wall times and failures (goal 0). The upstream's bytes are counted by a TCP relay in front of it.
// Two rollouts through a cold cache each: all 50 at once, and a canary wave (1 machine, then 49 at once),
// because docker-registry 2.8 does not coalesce concurrent misses (each one streams from the upstream
// while the first is being stored).
// Run as root (image builds): npm run build && npx tsx bench/fleet.ts [--machines N] [--mib M]
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, createKeyset, createProject, publish } from '../src/build/index.js';
import { install, update } from '../src/machine/index.js';
import { openLayout } from '../src/oci/index.js';
import { busyboxTree, startBenchRegistry } from './support.js';

const { values } = parseArgs({ options: { machines: { type: 'string', default: '50' }, mib: { type: 'string', default: '16' } } });
const MACHINES = Number(values.machines);
const MIB = Number(values.mib);
if (process.getuid?.() !== 0) throw new Error('run as root');

/** A TCP relay on 127.0.0.1 to `port` that counts the bytes the server sends back. */
async function countingRelay(port: number): Promise<{ host: string; bytes: () => number; close(): Promise<void> }> {
  let down = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(port, '127.0.0.1');
    sockets.add(client).add(up);
    const drop = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    up.on('data', (b: Buffer) => (down += b.length));
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => down,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const work = await mkdtemp('/var/tmp/mosctl-bench-fleet-');
const upstream = await startBenchRegistry(work, { name: 'upstream' });
const relay = await countingRelay(upstream.port);
const cache = await startBenchRegistry(work, { name: 'cache', proxy: `http://${relay.host}` });
const cache2 = await startBenchRegistry(work, { name: 'cache2', proxy: `http://${relay.host}` });
try {
  const dataHome = join(work, 'keys');
  await createKeyset({ name: 'fleet', dataHome });
  const project = await createProject({ keyset: 'fleet', project: 'rel', dataHome });
  const layout = join(work, 'images');
  const store = await openLayout(layout, { create: true });
  await buildImage({ rootfs: busyboxTree(work, 'hostfs', { 'etc/os-release': 'NAME=fleet\n' }), dst: store, tag: 'hostfs-1' });
  await buildImage({ rootfs: busyboxTree(work, 'app-1', { 'app/blob': randomBytes(MIB << 20) }), dst: store, tag: 'app-1' });
  const app2 = await buildImage({ rootfs: busyboxTree(work, 'app-2', { 'app/blob': randomBytes(MIB << 20) }), dst: store, tag: 'app-2' });
  const yaml = (app: string) =>
    ['version: 1', 'product: fleet', 'update_type: complete', 'targets:',
      `  - {service_name: hostfs, source: "oci:${layout}:hostfs-1", version: "1.0.0", service_type: hostfs, network: {type: host}, nsgroup: ""}`,
      `  - {service_name: app, source: "oci:${layout}:${app}", version: "${app === 'app-1' ? '1.0.0' : '2.0.0'}", service_type: fs-only, network: {type: none}, nsgroup: ""}`,
    ].join('\n') + '\n';
  const pub = async (tag: string, app: string) => {
    const file = join(work, `${tag}.yaml`);
    writeFileSync(file, yaml(app));
    return publish({ manifestFile: file, repo: upstream.host, name: `machine/install:${tag}`, cert: project.cert, key: project.key });
  };
  await pub('1', 'app-1');
  await pub('2', 'app-2');
  // What the update adds: the new app image (manifest, config, layers).
  const added = app2.layers.reduce((n, l) => n + l.size, 0) + app2.descriptor.size;

  // Machines name the upstream by the relay's address; registries.conf sends the cache group through the mirror.
  const confFor = (mirror: string) => {
    const f = join(work, `registries-${mirror.replace(/\W/g, '_')}.conf`);
    writeFileSync(f, `[[registry]]\nprefix = "${relay.host}"\nlocation = "${relay.host}"\n[[registry.mirror]]\nlocation = "${mirror}"\n`);
    return f;
  };
  const none = join(work, 'none.conf');
  writeFileSync(none, '');
  const roots = (group: string) => Array.from({ length: MACHINES }, (_, i) => join(work, `${group}-${i}`));
  process.stderr.write(`installing release 1 on ${3 * MACHINES} roots...\n`);
  for (const root of [...roots('cache'), ...roots('canary'), ...roots('direct')]) {
    mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
    copyFileSync(project.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
    await install({ root, source: `${upstream.host}/machine/install:1`, registriesConf: none });
  }

  const group = async (name: string, registriesConf: string, canary = false) => {
    const before = relay.bytes();
    const t0 = performance.now();
    const run = (root: string) => update({ root, source: `${relay.host}/machine/install:2`, registriesConf });
    const all = roots(name);
    const first = canary ? await Promise.allSettled([run(all[0]!)]) : [];
    const results = [...first, ...(await Promise.allSettled((canary ? all.slice(1) : all).map(run)))];
    const ms = performance.now() - t0;
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    return { ms, upstreamBytes: relay.bytes() - before, failed: failed.length, firstError: failed[0]?.reason as Error | undefined };
  };
  process.stderr.write(`updating ${MACHINES} roots through a cold cache, all at once...\n`);
  const viaCache = await group('cache', confFor(cache.host));
  process.stderr.write(`updating ${MACHINES} roots through another cold cache, a canary first...\n`);
  const viaCanary = await group('canary', confFor(cache2.host), true);
  process.stderr.write(`updating ${MACHINES} roots against the upstream...\n`);
  const direct = await group('direct', none);

  const mib = (n: number) => (n / 1048576).toFixed(1);
  console.log(`release 2 adds ${mib(added)} MiB (the app image: ${MIB} MiB incompressible); ${MACHINES} machines per group, updating at once (one process, concurrent updates)`);
  const line = (label: string, g: typeof direct, goal: string) =>
    console.log(`${label} upstream served ${mib(g.upstreamBytes)} MiB = ${(g.upstreamBytes / added).toFixed(2)}x the release's new bytes${goal}; wall ${(g.ms / 1000).toFixed(2)} s; failures ${g.failed} (goal 0)${g.firstError ? `: ${g.firstError.message}` : ''}`);
  line('through the cache, canary then 49 at once:', viaCanary, ' (goal <= 1.05, incl. manifests and signatures)');
  line('through the cache, all 50 at once:        ', viaCache, ' (docker-registry 2.8 fetches every concurrent miss from the upstream)');
  line('against the upstream directly, 50 at once:', direct, '');
} finally {
  await cache.stop();
  await cache2.stop();
  await relay.close();
  await upstream.stop();
  await rm(work, { recursive: true, force: true });
}
