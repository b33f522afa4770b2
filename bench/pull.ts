// Pull benchmark (issue 4, Performance): a ~1 GiB image of incompressible layers in a local
// docker-registry; alternately 5x our pull into an empty layout and 5x `skopeo copy docker://… oci:…`.
// Prints median wall times and their ratio (goal <= 0.8), our peak RSS (goal <= 150 MiB) and the blob
// bytes fetched by a second pull into the full store (goal 0).
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
if (!existsSync(join(dist, 'system', 'index.js'))) throw new Error('run `npm run build` first');

// The pull the bench measures, in a fresh Node process (dist build, no loader), reporting its own figures.
const CHILD = `
const { openReference } = await import(${JSON.stringify(join(dist, 'system', 'copy.js'))}); // not index.js: only what a pull loads
const { copy } = await import(${JSON.stringify(join(dist, 'oci', 'index.js'))});
const { readFileSync } = await import('node:fs');
const [srcText, dstText] = process.argv.slice(1);
const src = await openReference(srcText, {});
const dst = await openReference(dstText, { create: true });
const r = await copy({ src: src.store, dst: dst.store, reference: src.reference, tag: dst.reference });
const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
process.stdout.write(JSON.stringify({ blobBytesFetched: src.store.stats.blobBytesFetched, blobsSkipped: r.blobsSkipped, maxRssKiB: process.resourceUsage().maxRSS, vmHwmKiB: hwm ? Number(hwm[1]) : 0 }));
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

  const ours: number[] = [];
  const theirs: number[] = [];
  let peakRssKiB = 0;
  for (let i = 0; i < RUNS; i++) {
    const a = join(work, `ours-${i}`);
    const r = await run([process.execPath, '--input-type=module', '-e', CHILD, remote, `oci:${a}:bench`]);
    const fig = JSON.parse(r.stdout) as { maxRssKiB: number; vmHwmKiB: number };
    ours.push(r.ms);
    peakRssKiB = Math.max(peakRssKiB, fig.maxRssKiB, fig.vmHwmKiB);
    if (i < RUNS - 1) await rm(a, { recursive: true });
    const b = join(work, `skopeo-${i}`);
    theirs.push((await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', remote, `oci:${b}:bench`])).ms);
    await rm(b, { recursive: true });
    process.stderr.write(`run ${i + 1}/${RUNS}: ours ${(ours[i]! / 1000).toFixed(2)} s, skopeo ${(theirs[i]! / 1000).toFixed(2)} s\n`);
  }
  // Second pull into the last (full) store: nothing but manifests should travel.
  const again = await run([process.execPath, '--input-type=module', '-e', CHILD, remote, `oci:${join(work, `ours-${RUNS - 1}`)}:bench`]);
  const second = JSON.parse(again.stdout) as { blobBytesFetched: number; blobsSkipped: number };

  const size = LAYERS * LAYER_MIB;
  const mo = median(ours);
  const ms = median(theirs);
  console.log(`image: ${LAYERS} layers x ${LAYER_MIB} MiB = ${size} MiB of incompressible data, local docker-registry 2.8.2`);
  console.log(`median wall, our pull (child process, empty store): ${(mo / 1000).toFixed(2)} s  (${(size / (mo / 1000)).toFixed(0)} MiB/s)`);
  console.log(`median wall, skopeo copy docker:// -> oci:        ${(ms / 1000).toFixed(2)} s  (${(size / (ms / 1000)).toFixed(0)} MiB/s)`);
  console.log(`ratio ours/skopeo: ${(mo / ms).toFixed(2)}  (goal <= 0.8)`);
  console.log(`our peak RSS: ${(peakRssKiB / 1024).toFixed(0)} MiB  (goal <= 150 MiB)`);
  console.log(`second pull into the full store: ${second.blobBytesFetched} blob bytes fetched, ${second.blobsSkipped} blobs skipped  (goal 0)`);
} finally {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
}
