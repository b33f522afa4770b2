import { t, type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { needs, isRoot } from '../support/env.js';
import { childEnv, cliPath } from '../support/cli.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { isMosError } from '../../src/base/index.js';
import { listHistory, readGeneration } from '../../src/config/index.js';
import { fsck, openLayout } from '../../src/oci/index.js';
import { hasImage, loadSystem, storeDir, targetDescriptor } from '../../src/system/index.js';

// SIGKILL `mosctl install` and `mosctl update` at random moments (spread over fetch, verify, copy and
// commit by drawing the delay across a whole run's duration). After every kill: the current generation
// is a complete old or new one whose images are all in the store, the store has no corrupt or missing
// blob, the repository passes `git fsck --strict`, and history is linear. Each following run is the
// re-run that must succeed from whatever the kill left.
const KILLS = Number(process.env['CRASH_KILLS'] ?? 26); // per command: 52 in all
const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup', 'git'] });

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function run(args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath('mosctl'), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

async function checkConsistent(t: Test, root: string, label: string): Promise<number> {
  let generation = 0;
  if (existsSync(join(root, 'config', 'manifest.git'))) {
    const gen = await readGeneration({ root });
    const sys = await loadSystem(gen);
    generation = gen.number;
    const store = await openLayout(storeDir(root));
    for (const x of sys.targets) {
      if (!(await hasImage(store, targetDescriptor(x.target)))) t.fail(`${label}: generation ${gen.number} target ${x.target.service_name} image missing`);
    }
    const git = spawnSync('git', ['-C', join(root, 'config', 'manifest.git'), 'fsck', '--strict', '--no-dangling'], { encoding: 'utf8' });
    if (git.status !== 0) t.fail(`${label}: git fsck: ${git.stderr}`);
    const hist = await listHistory({ root });
    if (hist.length !== gen.number || hist.some((h, i) => h.number !== i + 1)) t.fail(`${label}: history not linear`);
  }
  if (existsSync(join(storeDir(root), 'index.json'))) {
    const r = await fsck(await openLayout(storeDir(root)));
    if (r.corrupt.length > 0 || r.missing.length > 0) t.fail(`${label}: store fsck: ${r.problems.join('; ')}`);
  }
  return generation;
}

t.test('SIGKILL during install and update leaves the old or the new generation', { skip }, async (t) => {
  if (!isRoot) return;
  const work = makeSystemRoot(t, 'mosctl-crash-work-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const release = `oci:${join(work, 'release')}`;
  const pub = (name: string, targets: string[]) => publishYaml({ dir: work, yaml: manifestYaml({ targets }), repo: release, name, pki });
  const a = await pub('machine/install:a', [T.hostfs(images), T.data(images)]);
  const b = await pub('machine/install:b', [T.hostfs(images, '1.1'), T.data(images), T.extra(images)]);
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const rnd = seeded(Number(process.env['CRASH_SEED'] ?? 20261122));

  // How long an uninterrupted run takes here, to spread kill moments over it.
  const probeRoot = makeSystemRoot(t, 'mosctl-crash-probe-');
  placeCa(probeRoot, pki);
  const t0 = Date.now();
  const probe = await run(['--root', probeRoot, 'install', a.reference]);
  t.equal(probe.code, 0, `probe install: ${probe.stderr}`);
  const span = Math.max(Date.now() - t0, 300);
  t.comment(`an install takes ${span} ms here; kills drawn in [0, ${span}) ms`);

  let killed = 0;
  let completed = 0;
  for (let i = 0; i < KILLS; i++) {
    const r = await run(['--root', root, 'install', a.reference], Math.floor(rnd() * span));
    if (r.signal === 'SIGKILL') killed++;
    else if (r.code === 0) completed++;
    else if (!/already installed/.test(r.stderr)) t.fail(`install run ${i}: exit ${r.code}: ${r.stderr}`);
    await checkConsistent(t, root, `install kill ${i}`);
  }
  const fin = await run(['--root', root, 'install', a.reference]);
  t.ok(fin.code === 0 || /already installed/.test(fin.stderr), 'a re-run after the kills succeeds (or finds the system installed)');
  t.equal(await checkConsistent(t, root, 'after install'), 1, 'generation 1 installed');
  t.comment(`install: ${killed} killed, ${completed} completed between kills`);

  let expect = 1;
  killed = 0;
  for (let i = 0; i < KILLS; i++) {
    const src = i % 2 === 0 ? b.reference : a.reference;
    const r = await run(['--root', root, 'update', '--allow-downgrade', src], Math.floor(rnd() * span));
    const gen = await checkConsistent(t, root, `update kill ${i}`);
    if (r.signal === 'SIGKILL') {
      killed++;
      t.ok(gen === expect || gen === expect + 1, `update kill ${i}: generation ${gen} is the old (${expect}) or the new one`);
      expect = gen;
    } else if (r.code === 0) {
      expect = gen;
    } else t.fail(`update run ${i}: exit ${r.code}: ${r.stderr}`);
  }
  const last = await run(['--root', root, 'update', '--allow-downgrade', b.reference]);
  t.equal(last.code, 0, `a final update succeeds: ${last.stderr}`);
  const sys = await loadSystem(await readGeneration({ root })).catch((e: unknown) => (isMosError(e) ? e : Promise.reject(e)));
  t.notOk(isMosError(sys), 'current generation loads');
  t.comment(`update: ${killed} killed; ${(await listHistory({ root })).length} generations committed in all`);
});
