import { t } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { fsck, openLayout } from '../../src/oci/index.js';
import { copyImage } from '../../src/build/index.js';
import { childEnv, cliPath, plainNode } from '../support/cli.js';
import { needs } from '../support/env.js';
import { inLanes, killCount, spreadKills } from '../support/kills.js';
import { testRandom } from '../support/random.js';
import { startRegistry } from '../support/registry.js';
import { buildImage, pushImage } from './layout-fixture.js';

// SIGKILL `mosb image copy` in every phase: start-up and layout creation (before the first progress
// event), blob streaming, and the manifest/index.json write after the last blob. A probe run times
// the phases from its --json progress events; each kill lands a fraction of the way through its
// phase, counted from the event that starts it. Afterwards the store must hold no corrupt or partial
// blob under a digest name, no manifest without its children, and a re-run must complete. Kills are
// independent (each starts from an empty store), so two run at once, each lane with its own store.
//
// MOSCTL_KILLS sets the number of kills (CI default 21: 7 per phase); MOSCTL_TEST_SEED replays the
// jitter inside each phase slice.
const PHASES = ['start', 'blobs', 'finish'] as const;
type Phase = (typeof PHASES)[number];
const KILLS = killCount(21);
const MiB = 1024 * 1024;
const rnd = testRandom('oci/crash');

t.test(`${KILLS} SIGKILLs during a registry -> layout copy`, { skip: needs({ programs: ['docker-registry', 'skopeo'] }) }, async (t) => {
  const reg = await startRegistry(t);
  const dir = t.testdir({});
  const seed = await openLayout(join(dir, 'seed'), { create: true });
  const img = buildImage({ layers: [2 * MiB, 3 * MiB, 4 * MiB] });
  await pushImage(seed, img, 'v1');
  const remote = `docker://${reg.host}/mos/crash:1`;
  // skopeo is the independent pusher; --preserve-digests keeps our uncompressed test layers as they are.
  await exec(['skopeo', 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${seed.dir}:v1`, remote]);

  // Spawns the copy into `store`; with `kill`, SIGKILLs it `delayMs` after the start of `phase`.
  const copyRun = (store: string, kill?: { phase: Phase; delayMs: number }, blobs = Infinity) => {
    const t0 = Date.now();
    const child = spawn(...plainNode([cliPath('mosb'), '--json', 'image', 'copy', remote, `oci:${store}:${img.manifest.desc.digest}`]), { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    const killer = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    t.teardown(killer);
    const seen: Partial<Record<Phase | 'exit', number>> = { start: 0 };
    let timer: NodeJS.Timeout | undefined;
    const arm = (phase: Phase) => {
      seen[phase] ??= Date.now() - t0;
      if (kill?.phase === phase && !timer) timer = setTimeout(killer, kill.delayMs);
    };
    arm('start');
    let buf = '';
    let done = 0;
    let lastBlobDone = 0;
    child.stderr.on('data', (b: Buffer) => {
      buf += b.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) {
        if (!line.includes('"progress"')) continue;
        arm('blobs');
        if (!line.includes('"blob-done"')) continue;
        lastBlobDone = Date.now() - t0;
        if (++done >= blobs) arm('finish');
      }
    });
    return new Promise<{ signal: NodeJS.Signals | null; code: number | null; seen: typeof seen; blobsDone: number; lastBlobDone: number }>((resolve) => {
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        seen.exit = Date.now() - t0;
        resolve({ code, signal, seen, blobsDone: done, lastBlobDone });
      });
    });
  };

  const probeStore = join(dir, 'probe');
  const first = await copyRun(probeStore);
  t.equal(first.code, 0, 'the uninterrupted CLI copy succeeds');
  t.ok(first.blobsDone > 0, 'it reports blob-done events');
  const s = first.seen;
  const spans: Record<Phase, number> = {
    start: Math.max(20, s.blobs ?? 0),
    blobs: Math.max(20, first.lastBlobDone - (s.blobs ?? 0)),
    finish: Math.max(20, (s.exit ?? 0) - first.lastBlobDone),
  };
  t.comment(`a full CLI copy took ${s.exit} ms; phases (ms): ${JSON.stringify(spans)}`);

  let killedMidway = 0;
  await inLanes(spreadKills(KILLS, PHASES, rnd), 2, async (k, i, lane) => {
    const store = join(dir, `store-${lane}`);
    const dst = `oci:${store}:${img.manifest.desc.digest}`;
    await rm(store, { recursive: true, force: true });
    const r = await copyRun(store, { phase: k.phase, delayMs: Math.floor(k.at * spans[k.phase]) }, first.blobsDone);
    if (r.signal === 'SIGKILL') killedMidway++;
    const label = `kill ${i} (${k.phase} +${Math.floor(k.at * spans[k.phase])} ms)`;

    if (existsSync(join(store, 'oci-layout'))) {
      const report = await fsck(await openLayout(store), { clean: true });
      t.same({ corrupt: report.corrupt, missing: report.missing, problems: report.problems }, { corrupt: [], missing: [], problems: [] }, `${label}: store consistent`);
    }
    // The re-run in-process (same code as the CLI, without another Node start-up).
    const rerun = await copyImage({ src: remote, dst });
    t.equal(rerun.descriptor.digest, img.manifest.desc.digest, `${label}: re-run completes`);
    const after = await fsck(await openLayout(store), { clean: true });
    t.same({ ok: after.ok, dangling: after.dangling, blobs: after.blobs }, { ok: true, dangling: [], blobs: 5 }, `${label}: complete store after the re-run`);
    t.same((await fsck(await openLayout(store))).strays, [], `${label}: temp files of the dead writer cleaned`);
  });
  t.ok(killedMidway >= KILLS / 2, `most kills landed before the copy finished (${killedMidway}/${KILLS})`);
});
