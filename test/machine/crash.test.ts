import { t, type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { needs, isRoot } from '../support/env.js';
import { childEnv, cliPath, plainNode } from '../support/cli.js';
import { killCount, spreadKills, type KillPoint } from '../support/kills.js';
import { testRandom } from '../support/random.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { isMosError } from '../../src/base/index.js';
import { listHistory, readGeneration } from '../../src/config/index.js';
import { fsck, openLayout } from '../../src/oci/index.js';
import { hasImage, loadSystem, systemPaths, targetDescriptor } from '../../src/machine/index.js';

// SIGKILL `mosctl install` and `mosctl update` in every phase: before the first step, while fetching
// and verifying the manifest, while pulling images into the store, and while committing. A probe run
// of each command times its phases (from the --json progress steps); each kill is then placed a
// fraction of the way through its phase, counted from the step that starts it, so it lands there
// even when this machine is slower or faster than during the probe. After every kill: the current
// generation is a complete old or new one whose images are all in the store, the store has no corrupt
// or missing blob, the repository passes `git fsck --strict`, and history is linear. Each following
// run is the re-run that must succeed from whatever the kill left. Install kills and update kills run
// at once on two roots.
//
// MOSCTL_KILLS sets the kills per command (CI default 16: 4 per phase); MOSCTL_TEST_SEED replays the
// jitter inside each phase slice.
const PHASES = ['start', 'fetch', 'pull', 'commit'] as const;
type Phase = (typeof PHASES)[number];
const KILLS = killCount(16);
const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup', 'git'] });
const rnd = testRandom('system/crash');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** ms after spawn at which each progress step was seen, and the exit. */
  steps: Partial<Record<Phase | 'exit', number>>;
}

/** Runs mosctl with --json (progress steps on stderr); with `kill`, SIGKILLs it `delayMs` after the step `after` (or the spawn). */
async function run(args: string[], kill?: { after: Phase; delayMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(...plainNode([cliPath('mosctl'), '--json', ...args]), { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    const steps: Run['steps'] = { start: 0 };
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = (phase: Phase) => {
      if (kill && kill.after === phase && !timer) timer = setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
    };
    arm('start');
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      for (const m of stderr.matchAll(/"step":"(fetch|pull|commit)"/g)) {
        const phase = m[1] as Phase;
        if (steps[phase] === undefined) {
          steps[phase] = Date.now() - t0;
          arm(phase);
        }
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      steps.exit = Date.now() - t0;
      resolve({ code, signal, stderr, steps });
    });
  });
}

/** How long each phase of an uninterrupted run took (at least 20 ms, so a kill has room). */
function phaseSpans(r: Run): Record<Phase, number> {
  const s = r.steps;
  const span = (from: number | undefined, to: number | undefined) => Math.max(20, (to ?? 0) - (from ?? 0));
  return { start: span(0, s.fetch), fetch: span(s.fetch, s.pull), pull: span(s.pull, s.commit), commit: span(s.commit, s.exit) };
}

/** Asserts the root is consistent (one assertion listing every problem); returns the current generation (0: none). */
async function checkConsistent(t: Test, root: string, label: string): Promise<{ generation: number; targets: number }> {
  const problems: string[] = [];
  let generation = 0;
  let targets = 0;
  if (existsSync(join(root, 'config', 'manifest.git'))) {
    const gen = await readGeneration({ root });
    const sys = await loadSystem(gen);
    generation = gen.number;
    targets = sys.targets.length;
    const store = await openLayout(systemPaths(root).store);
    for (const x of sys.targets) {
      if (!(await hasImage(store, targetDescriptor(x.target)))) problems.push(`generation ${gen.number} target ${x.target.service_name} image missing`);
    }
    const git = spawnSync('git', ['-C', join(root, 'config', 'manifest.git'), 'fsck', '--strict', '--no-dangling'], { encoding: 'utf8' });
    if (git.status !== 0) problems.push(`git fsck: ${git.stderr}`);
    const hist = await listHistory({ root });
    if (hist.length !== gen.number || hist.some((h, i) => h.number !== i + 1)) problems.push('history not linear');
  }
  if (existsSync(join(systemPaths(root).store, 'index.json'))) {
    const r = await fsck(await openLayout(systemPaths(root).store));
    if (r.corrupt.length > 0 || r.missing.length > 0) problems.push(`store fsck: ${r.problems.join('; ')}`);
  }
  t.same(problems, [], `${label}: consistent (generation ${generation})`);
  return { generation, targets };
}

const where = (k: KillPoint<Phase>, spans: Record<Phase, number>) => `${k.phase} +${Math.floor(k.at * spans[k.phase])} ms`;

t.test('SIGKILL during install and update leaves the old or the new generation', { skip }, async (t) => {
  if (!isRoot) return;
  t.comment(`${KILLS} kills per command over ${PHASES.join(', ')} (MOSCTL_KILLS to change)`);
  const work = makeSystemRoot(t, 'mosctl-crash-work-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const release = `oci:${join(work, 'release')}`;
  const pub = (name: string, targets: string[]) => publishYaml({ dir: work, yaml: manifestYaml({ targets }), repo: release, name, pki });
  const a = await pub('machine/install:a', [T.hostfs(images), T.data(images)]);
  const b = await pub('machine/install:b', [T.hostfs(images, '1.1'), T.data(images), T.extra(images)]);
  const freshRoot = (prefix?: string) => {
    const root = makeSystemRoot(t, prefix);
    placeCa(root, pki);
    return root;
  };

  // Uninterrupted runs time the phases: an install of a, then an update to b.
  const probeRoot = freshRoot('mosctl-crash-probe-');
  const probe = await run(['--root', probeRoot, 'install', a.reference]);
  t.equal(probe.code, 0, `probe install: ${probe.stderr}`);
  const probeUp = await run(['--root', probeRoot, 'update', b.reference]);
  t.equal(probeUp.code, 0, `probe update: ${probeUp.stderr}`);
  const installSpans = phaseSpans(probe);
  const updateSpans = phaseSpans(probeUp);
  t.comment(`install phases (ms): ${JSON.stringify(installSpans)}; update phases: ${JSON.stringify(updateSpans)}`);
  const installKills = spreadKills(KILLS, PHASES, rnd);
  const updateKills = spreadKills(KILLS, PHASES, rnd);

  const installLane = async () => {
    let root = freshRoot();
    let killed = 0;
    let completed = 0;
    for (const [i, k] of installKills.entries()) {
      const r = await run(['--root', root, 'install', a.reference], { after: k.phase, delayMs: Math.floor(k.at * installSpans[k.phase]) });
      if (r.signal === 'SIGKILL') killed++;
      else if (r.code === 0) completed++;
      else if (!/already installed/.test(r.stderr)) t.fail(`install run ${i}: exit ${r.code}: ${r.stderr}`);
      const { generation } = await checkConsistent(t, root, `install kill ${i} (${where(k, installSpans)})`);
      // Installed (by this run or an earlier one): the next kill needs an install to interrupt.
      if (generation === 1 && i < installKills.length - 1) root = freshRoot();
    }
    const fin = await run(['--root', root, 'install', a.reference]);
    t.ok(fin.code === 0 || /already installed/.test(fin.stderr), 'a re-run after the kills succeeds (or finds the system installed)');
    t.equal((await checkConsistent(t, root, 'after install')).generation, 1, 'generation 1 installed');
    t.comment(`install: ${killed} killed, ${completed} completed between kills`);
  };

  const updateLane = async () => {
    const root = freshRoot();
    const first = await run(['--root', root, 'install', a.reference]);
    t.equal(first.code, 0, `install before the update kills: ${first.stderr}`);
    let expect = 1;
    let killed = 0;
    let targets = 2; // a has two targets, b three
    for (const [i, k] of updateKills.entries()) {
      // Always to the other manifest, so every run has images to pull and a generation to commit.
      const src = targets === 2 ? b.reference : a.reference;
      const r = await run(['--root', root, 'update', '--allow-downgrade', src], { after: k.phase, delayMs: Math.floor(k.at * updateSpans[k.phase]) });
      const now = await checkConsistent(t, root, `update kill ${i} (${where(k, updateSpans)})`);
      targets = now.targets;
      if (r.signal === 'SIGKILL') {
        killed++;
        t.ok(now.generation === expect || now.generation === expect + 1, `update kill ${i}: generation ${now.generation} is the old (${expect}) or the new one`);
        expect = now.generation;
      } else if (r.code === 0) {
        expect = now.generation;
      } else t.fail(`update run ${i}: exit ${r.code}: ${r.stderr}`);
    }
    const last = await run(['--root', root, 'update', '--allow-downgrade', b.reference]);
    t.equal(last.code, 0, `a final update succeeds: ${last.stderr}`);
    const sys = await loadSystem(await readGeneration({ root })).catch((e: unknown) => (isMosError(e) ? e : Promise.reject(e)));
    t.notOk(isMosError(sys), 'current generation loads');
    t.comment(`update: ${killed} killed; ${(await listHistory({ root })).length} generations committed in all`);
  };

  await Promise.all([installLane(), updateLane()]);
});
