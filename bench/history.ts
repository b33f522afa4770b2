// History benchmark (issue item 7): commands that act on the current generation must not get slower as
// history grows. Two roots installed from the same signed releases (hostfs + one fs-only target, images
// published to a local docker-registry): one at 2 generations, one grown to 1000 by committing in-process
// what `rollback` to the previous generation commits (same files, same message, commitGeneration under
// the lock; without re-verifying the same signatures 1000 times). Then, alternating the roots, whole
// CLI processes (node dist/cmd/mosctl.js), median of N runs each:
//   update (real: back to release 1, --allow-downgrade), rollback (to the previous generation: release 2
//   again), status, no-op update (release 2 again), mount and create-boot-fs (each unmounted, untimed).
// Each run adds 2 generations to both roots. Goal: ratio ms@1000 / ms@2 <= 1.1 for every command.
// Wall times on a shared machine are noisy, so each command also runs once under strace, counting the
// file system calls that touch config/manifest.git: a count independent of load, equal at 2 and 1000
// generations unless something walks history.
// Run as root: npm run build && npx tsx bench/history.ts [--runs N] [--generations N]
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { commitGeneration, lockConfig, readGeneration } from '../src/config/index.js';
import { openLayout } from '../src/oci/index.js';
import { buildImage, createKeyset, createProject, publish } from '../src/build/index.js';
import { install, update } from '../src/machine/index.js';
import { busyboxTree, median, startBenchRegistry, timed } from './support.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, generations: { type: 'string', default: '1000' } } });
const RUNS = Number(values.runs);
const MANY = Number(values.generations);
const top = fileURLToPath(new URL('..', import.meta.url));
const mosctl = join(top, 'dist', 'cmd', 'mosctl.js');
if (process.getuid?.() !== 0) throw new Error('run as root (mount and create-boot-fs mount squashfs layers)');

const work = await mkdtemp('/var/tmp/mosctl-bench-history-');
const registry = await startBenchRegistry(work);
const roots: string[] = [];
try {
  const dataHome = join(work, 'keys');
  await createKeyset({ name: 'bench', dataHome });
  const project = await createProject({ keyset: 'bench', project: 'rel', dataHome });
  const layout = join(work, 'images');
  const store = await openLayout(layout, { create: true });
  const tree = (name: string, files: Record<string, Buffer | string>) => busyboxTree(work, name, files);
  for (const v of ['1', '2']) await buildImage({ rootfs: tree(`hostfs-${v}`, { 'etc/os-release': `VERSION=${v}\n` }), dst: store, tag: `hostfs-${v}` });
  await buildImage({ rootfs: tree('data', { 'share/data.txt': 'data\n' }), dst: store, tag: 'data' });
  const release = async (v: string) => {
    const file = join(work, `release-${v}.yaml`);
    writeFileSync(
      file,
      [
        'version: 1',
        'product: bench-history',
        'update_type: complete',
        'targets:',
        `  - {service_name: hostfs, source: "oci:${layout}:hostfs-${v}", version: "${v}.0.0", service_type: hostfs, network: {type: host}, nsgroup: ""}`,
        `  - {service_name: data, source: "oci:${layout}:data", version: "1.0.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`,
      ].join('\n') + '\n',
    );
    return (await publish({ manifestFile: file, repo: registry.host, name: `machine/install:${v}`, cert: project.cert, key: project.key })).reference;
  };
  const r1 = await release('1');
  const r2 = await release('2');

  // Both roots end at release 2: generation 2 is the update, then rollbacks alternate 1, 2, 1, 2, ...
  const makeRoot = async (name: string, generations: number) => {
    const root = join(work, name);
    roots.push(root);
    mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
    copyFileSync(project.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
    await install({ root, source: r1 });
    await update({ root, source: r2 });
    const releases = [await readGeneration({ root, ref: 1 }), await readGeneration({ root, ref: 2 })];
    await using _lock = await lockConfig(root);
    // Generation g rolls back to g - 2 (the previous of g - 1): its files, rollback's message.
    for (let g = 3; g <= generations; g++) await commitGeneration({ root, files: releases[g % 2 === 1 ? 0 : 1]!.files, message: `Rollback to generation ${g - 2}` });
    return root;
  };
  const t0 = performance.now();
  const few = await makeRoot('root-2', 2);
  const many = await makeRoot(`root-${MANY}`, MANY);
  console.log(`made ${MANY} generations in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // With TRACE set, the next command runs under strace; its calls on the config repository are kept.
  let trace: string | undefined;
  const repoCalls = new Map<string, number>();
  const cli = async (root: string, ...args: string[]) => {
    if (trace === undefined) return timed([process.execPath, mosctl, '--root', root, ...args]);
    const out = join(work, 'strace.txt');
    const r = await timed(['strace', '-f', '-qq', '-e', 'trace=%file', '-o', out, process.execPath, mosctl, '--root', root, ...args]);
    const n = readFileSync(out, 'utf8').split('\n').filter((l) => l.includes('/config/manifest.git')).length;
    repoCalls.set(`${trace} ${root}`, n);
    trace = undefined;
    return r;
  };
  const steps: [string, (root: string) => Promise<number>][] = [
    ['update', async (root) => (await cli(root, 'update', '--allow-downgrade', r1)).ms],
    ['rollback', async (root) => (await cli(root, 'rollback')).ms],
    ['status', async (root) => (await cli(root, 'status')).ms],
    [
      'update (no-op)',
      async (root) => {
        const r = await cli(root, '--json', 'update', r2);
        if (!(JSON.parse(r.stdout) as { noop?: boolean }).noop) throw new Error(`${root}: update ${r2} was not a no-op`);
        return r.ms;
      },
    ],
    [
      'mount',
      async (root) => {
        const dest = join(root, 'mnt', 'bench');
        const { ms } = await cli(root, 'mount', '--dest', dest);
        await cli(root, 'umount', '--dest', dest);
        return ms;
      },
    ],
    [
      'create-boot-fs',
      async (root) => {
        const dest = join(root, 'sysroot');
        const { ms } = await cli(root, 'create-boot-fs', '--dest', dest);
        await cli(root, 'umount', '--dest', dest);
        return ms;
      },
    ],
  ];
  const times = new Map(steps.map(([name]) => [name, { few: [] as number[], many: [] as number[] }]));
  // Run 0 warms up (page cache, the first verity check of each layer) and is not counted.
  for (let run = 0; run <= RUNS; run++) {
    for (const [name, step] of steps) {
      const a = await step(run % 2 ? few : many);
      const b = await step(run % 2 ? many : few);
      if (run === 0) continue;
      const t = times.get(name)!;
      t.few.push(run % 2 ? a : b);
      t.many.push(run % 2 ? b : a);
    }
  }
  const strace = spawnSync('strace', ['-V']).status === 0;
  if (strace) {
    for (const [name, step] of steps) {
      for (const root of [few, many]) {
        trace = name;
        await step(root);
      }
    }
  }
  console.log(`bench/history: whole mosctl processes, median of ${RUNS} runs, roots alternated; each run adds 2 generations`);
  console.log(`${'command'.padEnd(16)} ${'ms @ 2'.padStart(8)} ${`ms @ ${MANY}`.padStart(10)}  ${'ratio'.padStart(5)}   repo fs calls @ 2 / @ ${MANY} (strace)`);
  for (const [name, t] of times) {
    const a = median(t.few);
    const b = median(t.many);
    const calls = strace ? `${repoCalls.get(`${name} ${few}`)} / ${repoCalls.get(`${name} ${many}`)}` : '(no strace)';
    console.log(`${name.padEnd(16)} ${a.toFixed(0).padStart(8)} ${b.toFixed(0).padStart(10)}  ${(b / a).toFixed(2).padStart(5)}   ${calls}`);
  }
  console.log('goal: ratio <= 1.1 for each command (and equal fs call counts)');
} finally {
  await registry.stop();
  for (const root of roots) {
    for (const dest of [join(root, 'mnt', 'bench'), join(root, 'sysroot')]) spawnSync(process.execPath, [mosctl, '--root', root, 'umount', '--dest', dest], { stdio: 'ignore' });
  }
  const left = spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout.split('\n').filter((m) => m.startsWith(work));
  if (left.length === 0) await rm(work, { recursive: true, force: true });
  else console.error(`bench/history: ${left.length} mounts left under ${work}; not removed`);
}
