// Update benchmark (issue 7, Performance). A system of 5 targets (hostfs + 4 fs-only), each image a
// shared 4 MiB base layer plus its own 1 MiB top layer, published to a local docker-registry. Then,
// 5 alternated runs on a freshly installed root each:
//   - mosctl update to a release that changes ONE target's top layer: wall time and blob bytes fetched
//     (goal: only that layer, plus manifests and config), against the peer `skopeo copy` of the same
//     changed image into an OCI layout already holding the old images;
//   - a no-op update (the same manifest again): wall time (goal < 300 ms) and blob bytes (goal 0),
//     in-process, and as a CLI process (through its downloader, and with it off) against `node -e 0`
//     (issue 14's goal: <= 2x).
// Run as root (image builds unpack bases): npm run build && npx tsx bench/update.ts [--runs N]
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { openLayout, type LayoutStore } from '../src/oci/index.js';
import { buildImage, createKeyset, createProject, publish } from '../src/build/index.js';
import { install, update } from '../src/machine/index.js';
import { busyboxTree, median, startBenchRegistry, timed } from './support.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const top = fileURLToPath(new URL('..', import.meta.url));
const mosctl = join(top, 'dist', 'cmd', 'mosctl.js');
// The form machines run (the initrd, the guests) and the package's bin: one CommonJS file loaded through its V8 code cache.
const bundled = join(top, 'dist', 'bundle', 'mosctl.mjs');
if (process.getuid?.() !== 0) throw new Error('run as root');

const work = await mkdtemp('/var/tmp/mosctl-bench-update-');
const registry = await startBenchRegistry(work);
try {
  const dataHome = join(work, 'keys');
  await createKeyset({ name: 'bench', dataHome });
  const project = await createProject({ keyset: 'bench', project: 'rel', dataHome });
  const layout = join(work, 'images');
  const store: LayoutStore = await openLayout(layout, { create: true });

  // Base tree: busybox plus 4 MiB of incompressible data, shared by every target image.
  const tree = (name: string, files: Record<string, Buffer | string>) => busyboxTree(work, name, files);
  const baseFiles = { 'base/blob': randomBytes(4 << 20) };
  await buildImage({ rootfs: tree('base', baseFiles), dst: store, tag: 'base' });
  const base = { src: store, reference: 'base' };
  const names = ['hostfs', 't1', 't2', 't3', 't4'];
  const topFiles = new Map(names.map((n) => [n, randomBytes(1 << 20)]));
  for (const n of names) await buildImage({ rootfs: tree(`${n}-1`, { ...baseFiles, [`${n}/top`]: topFiles.get(n)! }), dst: store, tag: `${n}-1`, base });
  const changed = await buildImage({ rootfs: tree('t3-2', { ...baseFiles, 't3/top': randomBytes(1 << 20) }), dst: store, tag: 't3-2', base });
  const changedTop = changed.layers[changed.layers.length - 1]!;

  const yaml = (t3: string) =>
    [
      'version: 1',
      'product: bench',
      'update_type: complete',
      'targets:',
      ...names.map(
        (n) =>
          `  - {service_name: ${n}, source: "oci:${layout}:${n === 't3' ? t3 : `${n}-1`}", version: "${n === 't3' && t3 === 't3-2' ? '2.0.0' : '1.0.0'}", service_type: ${n === 'hostfs' ? 'hostfs' : 'fs-only'}, network: {type: none}, nsgroup: ""}`,
      ),
    ].join('\n') + '\n';
  const pub = async (name: string, text: string) => {
    const file = join(work, `${name}.yaml`);
    writeFileSync(file, text);
    return publish({ manifestFile: file, repo: registry.host, name: `machine/install:${name}`, cert: project.cert, key: project.key });
  };
  const r1 = await pub('1', yaml('t3-1'));
  const r2 = await pub('2', yaml('t3-2'));

  const updateMs: number[] = [];
  const peerMs: number[] = [];
  const noopMs: number[] = [];
  const noopCliMs: number[] = [];
  const noopCliOffMs: number[] = [];
  const noopBundleMs: number[] = [];
  const noopBundleOffMs: number[] = [];
  const nodeMs: number[] = [];
  let fetched = 0;
  let noopBytes = 0;
  for (let run = 0; run < RUNS; run++) {
    const root = join(work, `root-${run}`);
    mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
    copyFileSync(project.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
    await install({ root, source: r1.reference });
    let t0 = performance.now();
    const u = await update({ root, source: r2.reference });
    updateMs.push(performance.now() - t0);
    fetched = u.blobBytes;

    // The peer: skopeo copies the changed image into a layout that already holds every old image.
    const peer = join(work, `peer-${run}`);
    for (const n of names) spawnSync('skopeo', ['copy', '--quiet', `oci:${layout}:${n}-1`, `oci:${peer}:${n}-1`]);
    const digest = r2.targets.find((t) => t.name === 't3')!.digest;
    peerMs.push((await timed(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/mos@${digest}`, `oci:${peer}:t3-2`])).ms);

    t0 = performance.now();
    const n = await update({ root, source: r2.reference });
    noopMs.push(performance.now() - t0);
    noopBytes += n.blobBytes;
    if (!n.noop) throw new Error('second update was not a no-op');
    // As the CLI runs as root: through the unprivileged downloader (a numeric uid: no user is added here).
    noopCliMs.push((await timed([process.execPath, mosctl, '--root', root, '--downloader-user', '64091', 'update', r2.reference])).ms);
    noopCliOffMs.push((await timed([process.execPath, mosctl, '--root', root, '--downloader-user', 'off', 'update', r2.reference])).ms);
    noopBundleMs.push((await timed([process.execPath, bundled, '--root', root, '--downloader-user', '64091', 'update', r2.reference])).ms);
    noopBundleOffMs.push((await timed([process.execPath, bundled, '--root', root, '--downloader-user', 'off', 'update', r2.reference])).ms);
    nodeMs.push((await timed([process.execPath, '-e', '0'])).ms);
  }
  const m = median(updateMs);
  const p = median(peerMs);
  console.log(`system: 5 targets, each a shared 4 MiB base layer + its own 1 MiB top layer; docker-registry on 127.0.0.1; ${RUNS} runs`);
  console.log(`update changing t3's top layer: median ${m.toFixed(0)} ms; blob bytes fetched ${fetched} (changed top layer ${changedTop.size} bytes; the rest is its config)`);
  console.log(`peer skopeo copy of the changed image into a layout holding the old ones: median ${p.toFixed(0)} ms; ratio ours/skopeo ${(m / p).toFixed(2)} (goal <= 2)`);
  console.log(`  (ours also verifies the current system and the new signature, and commits a generation)`);
  const nm = median(nodeMs);
  console.log(`no-op update (same manifest): median ${median(noopMs).toFixed(0)} ms in-process (goal < 300 ms); blob bytes fetched ${noopBytes} (goal 0)`);
  const cli = (label: string, down: number[], off: number[]) =>
    console.log(`no-op update as a CLI process, ${label}: ${median(down).toFixed(0)} ms through the downloader, ${median(off).toFixed(0)} ms with it off; ratios to node -e 0 (${nm.toFixed(0)} ms) ${(median(down) / nm).toFixed(2)} and ${(median(off) / nm).toFixed(2)} (goal <= 2)`);
  cli('the bundle (the bin, what machines run; V8 code cache)', noopBundleMs, noopBundleOffMs);
  cli('the ESM build (dist/cmd/mosctl.js)', noopCliMs, noopCliOffMs);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
