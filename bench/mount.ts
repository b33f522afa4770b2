// bench/mount: 10 targets × 5 squashfs layers (3 shared base layers, 2 variants of a middle layer, one
// layer per target: 15 distinct layers), assembled as read-only roots and torn down. Our library against
// a shell script issuing exactly the same mkdir/mount/umount/rmdir commands, alternated, 5 runs each.
// Needs root. Usage: npx tsx bench/mount.ts
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountImage, planMount, unmountImage, type LayerInput, type MountPlan } from '../src/atomfs/index.js';
import { parseSquashfsSuperblock, verityHashOffset, SQUASHFS_GZIP_MEDIA_TYPE, VERITY_ROOT_HASH_ANNOTATION } from '../src/squashfs/index.js';
import type { Digest } from '../src/base/index.js';

const TARGETS = 10;
const RUNS = 5;
const root = mkdtempSync(join(tmpdir(), 'mosctl-bench-mount-'));
const scratch = join(root, 'scratch-writes');
const blobs = join(root, 'blobs');
mkdirSync(blobs);

function sh(argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
}

function layer(name: string, files: number): LayerInput {
  const tree = join(root, `tree-${name}`);
  mkdirSync(tree);
  for (let i = 0; i < files; i++) writeFileSync(join(tree, `${name}-${i}`), `${name} ${i}\n`.repeat(50));
  const blob = join(root, `blob-${name}`);
  sh(['mksquashfs', tree, blob, '-comp', 'gzip', '-noappend', '-quiet', '-no-progress']);
  const size = statSync(blob).size;
  const rh = join(root, `rh-${name}`);
  sh(['veritysetup', 'format', blob, blob, `--hash-offset=${size}`, `--data-blocks=${size / 4096}`, `--root-hash-file=${rh}`]);
  const hex = createHash('sha256').update(readFileSync(blob)).digest('hex');
  renameSync(blob, join(blobs, hex));
  rmSync(tree, { recursive: true });
  return { path: join(blobs, hex), digest: `sha256:${hex}` as Digest, mediaType: SQUASHFS_GZIP_MEDIA_TYPE, annotations: { [VERITY_ROOT_HASH_ANNOTATION]: readFileSync(rh, 'utf8').trim() } };
}

const base = [layer('base0', 200), layer('base1', 50), layer('base2', 20)];
const variants = [layer('varA', 10), layer('varB', 10)];
const plans: MountPlan[] = [];
for (let i = 0; i < TARGETS; i++) {
  const layers = [...base, variants[i % 2]!, layer(`t${i}`, 5)];
  plans.push(planMount({ target: `t${i}`, layers, dest: join(root, 'mnt', `t${i}`), scratchDir: scratch, writable: false }));
}

function sizeLimit(path: string): number {
  const head = Buffer.alloc(96);
  const fd = openSync(path, 'r');
  readSync(fd, head, 0, 96, 0);
  closeSync(fd);
  return verityHashOffset(parseSquashfsSuperblock(head, path));
}

// The same commands the library issues, in the same order, as one shell script.
function script(): string {
  const lines = ['set -e'];
  const mounted = new Set<string>();
  for (const p of plans) {
    for (const l of p.layers) {
      if (mounted.has(l.dir)) continue;
      mounted.add(l.dir);
      lines.push(`mkdir -p ${l.dir}`, `mount -t squashfs -o ro,loop,sizelimit=${sizeLimit(l.blob)} ${l.blob} ${l.dir}`);
    }
    const o = p.steps.find((s) => s.kind === 'overlay');
    if (o?.kind === 'overlay') lines.push(`mkdir -p ${p.dest}`, `mount -t overlay overlay -o ${o.options} ${p.dest}`);
  }
  const users = new Map<string, number>();
  for (const p of plans) for (const l of p.layers) users.set(l.dir, (users.get(l.dir) ?? 0) + 1);
  for (const p of plans) {
    lines.push(`umount ${p.dest}`);
    for (const l of p.layers) {
      const n = users.get(l.dir)! - 1;
      users.set(l.dir, n);
      if (n === 0) lines.push(`umount ${l.dir}`, `rmdir ${l.dir}`);
    }
  }
  lines.push(`rmdir ${join(scratch, 'atomfs', 'mounts')}`);
  return lines.join('\n') + '\n';
}
const scriptPath = join(root, 'mount.sh');
writeFileSync(scriptPath, script());

async function ours(): Promise<number> {
  const t0 = performance.now();
  for (const p of plans) await mountImage(p);
  for (const p of plans) await unmountImage({ dest: p.dest, scratchDir: scratch });
  return performance.now() - t0;
}

function shell(): number {
  const t0 = performance.now();
  sh(['bash', scriptPath]);
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  // Warm-up: the first library run checks each layer's verity tree and writes markers; later runs skip it.
  const warm = await ours();
  shell();
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    a.push(await ours());
    b.push(shell());
  }
  const ma = median(a);
  const mb = median(b);
  console.log(`bench/mount: ${TARGETS} targets × 5 layers (15 distinct), read-only roots, mount + teardown, ${RUNS} runs each`);
  console.log(`  first library run (verifies every layer): ${warm.toFixed(0)} ms`);
  console.log(`  mosctl library : median ${ma.toFixed(0)} ms  (runs ${a.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  shell script   : median ${mb.toFixed(0)} ms  (runs ${b.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  ratio library/shell: ${(ma / mb).toFixed(2)}  (goal ≤ 1.5; goal < 1000 ms absolute)`);
} finally {
  for (const p of plans) await unmountImage({ dest: p.dest, scratchDir: scratch }).catch(() => {});
  const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root));
  if (left.length === 0) rmSync(root, { recursive: true, force: true });
  else console.error(`bench/mount: ${left.length} mounts left under ${root}`);
}
