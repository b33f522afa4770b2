// Pull benchmark (issues 4 and 14): a ~1 GiB image of incompressible layers in a local docker-registry;
// alternately R times our pull into an empty layout (in-process, and as root also through the
// unprivileged downloader, as mosctl pulls) and `skopeo copy docker://… oci:…`. Prints the median wall
// times and their ratio (goal <= 0.7), our peak RSS (goal <= 80 MiB), the disk's floor for the same bytes
// (dd with fdatasync) beside them, and the blob bytes fetched by a second pull into the full store (goal
// 0). Then, as root, bench/update.ts for the changed-layer update (goal <= 2x skopeo) and the no-op
// update as a CLI process against `node -e 0` (goal <= 2x).
// Run: npm run build && npx tsx bench/pull.ts [--layers N] [--layer-mib M] [--runs R]
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sha256Digest } from '../src/base/index.js';
import { OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, openLayout, type Descriptor } from '../src/oci/index.js';
import { median, startBenchRegistry, timed as run, type BenchRegistry } from './support.js';

const { values } = parseArgs({ options: { layers: { type: 'string', default: '8' }, 'layer-mib': { type: 'string', default: '128' }, runs: { type: 'string', default: '5' } } });
const LAYERS = Number(values.layers);
const LAYER_MIB = Number(values['layer-mib']);
const RUNS = Number(values.runs);
const top = fileURLToPath(new URL('..', import.meta.url));
const dist = join(top, 'dist', 'src');
if (!existsSync(join(dist, 'oci', 'index.js'))) throw new Error('run `npm run build` first');
const asRoot = process.getuid?.() === 0;
/** The uid the downloader runs as here (a number: the bench adds no user to this machine). */
const DOWNLOADER_UID = 64091;

// The pull the bench measures, in a fresh Node process (dist build, no loader), reporting its own figures.
const CHILD = `
const { Downloader, copy, openLayout, openRepository } = await import(${JSON.stringify(join(dist, 'oci', 'index.js'))});
const { readFileSync } = await import('node:fs');
const [mode, host, name, tag, dstDir] = process.argv.slice(1);
const dl = mode === 'downloader' ? new Downloader({ user: { uid: ${DOWNLOADER_UID}, gid: ${DOWNLOADER_UID} }, command: [process.execPath, ${JSON.stringify(join(dist, 'oci', 'downloader', 'child-main.js'))}] }) : undefined;
const src = dl ? dl.openRepository({ host, name }) : openRepository({ host, name });
const dst = await openLayout(dstDir, { create: true });
const hwmOf = (pid) => Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/' + pid + '/status', 'utf8'))?.[1] ?? 0);
let childHwm = 0;
const poll = dl ? setInterval(() => { try { if (dl.pid) childHwm = Math.max(childHwm, hwmOf(dl.pid)); } catch {} }, 50) : undefined;
const r = await copy({ src, dst, reference: tag, tag });
if (dl?.pid) childHwm = Math.max(childHwm, hwmOf(dl.pid));
clearInterval(poll);
await dl?.close();
process.stdout.write(JSON.stringify({ blobBytesFetched: src.stats?.blobBytesFetched ?? r.bytesCopied, blobsSkipped: r.blobsSkipped, vmHwmKiB: hwmOf('self'), childHwmKiB: childHwm }));
`;

/** Writes `size` random bytes to `path`, hashing them on the way (never the whole layer in memory). */
async function randomFile(path: string, size: number): Promise<Descriptor> {
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  for (let left = size; left > 0; ) {
    const chunk = randomBytes(Math.min(left, 4 * 1024 * 1024));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
    left -= chunk.length;
  }
  out.end();
  await once(out, 'finish');
  return { mediaType: OCI_LAYER_TAR, digest: `sha256:${hash.digest('hex')}`, size };
}


const work = await mkdtemp(join(tmpdir(), 'mosctl-bench-pull-'));
let registry: BenchRegistry | undefined;
try {
  registry = await startBenchRegistry(work);
  const port = registry.port;

  process.stderr.write(`generating ${LAYERS} x ${LAYER_MIB} MiB of random layers...\n`);
  const seed = await openLayout(join(work, 'seed'), { create: true });
  const layers: Descriptor[] = [];
  for (let i = 0; i < LAYERS; i++) {
    const file = join(work, `layer-${i}`);
    const d = await randomFile(file, LAYER_MIB * 1024 * 1024);
    await seed.pushBlob(d, createReadStream(file, { highWaterMark: 1024 * 1024 }));
    await rm(file);
    layers.push(d);
  }
  const configBytes = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const config: Descriptor = { mediaType: OCI_CONFIG, digest: sha256Digest(configBytes), size: configBytes.length };
  await seed.pushBlob(config, (async function* () { yield configBytes; })());
  const manifestBytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }));
  const manifest: Descriptor = { mediaType: OCI_MANIFEST, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
  await seed.pushManifest(manifest, manifestBytes, { tag: 'bench' });
  const remote = `docker://127.0.0.1:${port}/mos/bench:1`;
  process.stderr.write('pushing with skopeo...\n');
  await run(['skopeo', 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${seed.dir}:bench`, remote]);
  await rm(seed.dir, { recursive: true });

  const name = 'mos/bench';
  const modes = asRoot ? (['inproc', 'downloader'] as const) : (['inproc'] as const);
  const ours: Record<string, number[]> = { inproc: [], downloader: [] };
  const rss: Record<string, number> = { inproc: 0, downloader: 0, child: 0 };
  const theirs: number[] = [];
  const floor: number[] = [];
  const size = LAYERS * LAYER_MIB;
  for (let i = 0; i < RUNS; i++) {
    for (const mode of modes) {
      const a = join(work, `ours-${mode}-${i}`);
      const r = await run([process.execPath, '--input-type=module', '-e', CHILD, mode, registry.host, name, '1', a]);
      const fig = JSON.parse(r.stdout) as { vmHwmKiB: number; childHwmKiB: number };
      ours[mode]!.push(r.ms);
      rss[mode] = Math.max(rss[mode]!, fig.vmHwmKiB);
      rss['child'] = Math.max(rss['child']!, fig.childHwmKiB);
      if (i < RUNS - 1 || mode !== 'inproc') await rm(a, { recursive: true });
    }
    const b = join(work, `skopeo-${i}`);
    theirs.push((await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', remote, `oci:${b}:bench`])).ms);
    await rm(b, { recursive: true });
    // The disk's floor: the same number of bytes written and fdatasync-ed, on the same filesystem.
    const f = join(work, 'floor');
    floor.push((await run(['dd', 'if=/dev/zero', `of=${f}`, 'bs=1M', `count=${size}`, 'conv=fdatasync', 'status=none'])).ms);
    await rm(f);
    process.stderr.write(`run ${i + 1}/${RUNS}: ${modes.map((m) => `${m} ${(ours[m]![i]! / 1000).toFixed(2)} s`).join(', ')}, skopeo ${(theirs[i]! / 1000).toFixed(2)} s, disk floor ${(floor[i]! / 1000).toFixed(2)} s\n`);
  }
  // Second pull into the last (full) store: nothing but manifests should travel.
  const again = await run([process.execPath, '--input-type=module', '-e', CHILD, 'inproc', registry.host, name, '1', join(work, `ours-inproc-${RUNS - 1}`)]);
  const second = JSON.parse(again.stdout) as { blobBytesFetched: number; blobsSkipped: number };

  const ms = median(theirs);
  const mf = median(floor);
  console.log(`image: ${LAYERS} layers x ${LAYER_MIB} MiB = ${size} MiB of incompressible data, local docker-registry; ${RUNS} alternated runs`);
  console.log(`disk floor (dd of ${size} MiB with fdatasync, same filesystem): ${(mf / 1000).toFixed(2)} s  (${(size / (mf / 1000)).toFixed(0)} MiB/s)`);
  console.log(`median wall, skopeo copy docker:// -> oci:              ${(ms / 1000).toFixed(2)} s  (${(size / (ms / 1000)).toFixed(0)} MiB/s)`);
  for (const mode of modes) {
    const mo = median(ours[mode]!);
    const label = mode === 'inproc' ? 'our pull, in-process        ' : 'our pull, through downloader';
    console.log(`median wall, ${label} (empty store): ${(mo / 1000).toFixed(2)} s  (${(size / (mo / 1000)).toFixed(0)} MiB/s); ratio to skopeo ${(mo / ms).toFixed(2)} (goal <= 0.7), to the disk floor ${(mo / mf).toFixed(2)}`);
  }
  console.log(`peak RSS, in-process pull: ${(rss['inproc']! / 1024).toFixed(0)} MiB  (goal <= 80 MiB)`);
  if (asRoot) console.log(`peak RSS, downloader pull: root ${(rss['downloader']! / 1024).toFixed(0)} MiB (goal <= 80 MiB), its child ${(rss['child']! / 1024).toFixed(0)} MiB`);
  console.log(`second pull into the full store: ${second.blobBytesFetched} blob bytes fetched, ${second.blobsSkipped} blobs skipped  (goal 0)`);
} finally {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
}
// The update half (a machine root, signed releases): bench/update.ts, run here so one command prints all.
if (asRoot) {
  process.stderr.write('the update half: bench/update.ts...\n');
  const u = await run([process.execPath, '--import', 'tsx', join(top, 'bench', 'update.ts'), '--runs', String(RUNS)]);
  process.stdout.write(u.stdout);
}
