import { t } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { exec } from '../../src/host/index.js';
import { fsck, openLayout } from '../../src/oci/index.js';
import { copyImage } from '../../src/system/index.js';
import { childEnv, cliPath, runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { startRegistry } from '../support/registry.js';
import { buildImage, pushImage } from './layout-fixture.js';

// SIGKILL `mosb image copy` at random moments: afterwards the store must hold no corrupt or partial
// blob under a digest name, no manifest without its children, and a re-run must complete.

const KILLS = 20;
const MiB = 1024 * 1024;

t.test(`${KILLS} SIGKILLs during a registry -> layout copy`, { skip: needs({ programs: ['docker-registry', 'skopeo'] }) }, async (t) => {
  const reg = await startRegistry(t);
  const dir = t.testdir({});
  const seed = await openLayout(join(dir, 'seed'), { create: true });
  const img = buildImage({ layers: [2 * MiB, 3 * MiB, 4 * MiB] });
  await pushImage(seed, img, 'v1');
  const remote = `docker://${reg.host}/mos/crash:1`;
  // skopeo is the independent pusher; --preserve-digests keeps our uncompressed test layers as they are.
  await exec(['skopeo', 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${seed.dir}:v1`, remote]);

  const store = join(dir, 'store');
  const dst = `oci:${store}:${img.manifest.desc.digest}`;
  const started = Date.now();
  const first = await runCli('mosb', ['image', 'copy', remote, dst]);
  t.equal(first.code, 0, first.stderr);
  const fullRunMs = Math.max(300, Date.now() - started);
  t.comment(`a full CLI copy took ${fullRunMs} ms`);

  let killedMidway = 0;
  for (let i = 0; i < KILLS; i++) {
    await rm(store, { recursive: true, force: true });
    const child = spawn(process.execPath, [cliPath('mosb'), '--json', 'image', 'copy', remote, dst], { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    const killer = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    t.teardown(killer);
    if (i % 2 === 0) {
      // Uniform over the whole run: start-up, layout creation, blob streaming, index.json write.
      await new Promise((r) => setTimeout(r, randomInt(5, Math.min(fullRunMs, 1200))));
    } else {
      // 5-300 ms after the first progress line: in the middle of the blob transfers.
      await Promise.race([once(child.stderr, 'data'), once(child, 'exit')]);
      await new Promise((r) => setTimeout(r, randomInt(5, 300)));
    }
    child.stderr.resume();
    killer();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    if (child.signalCode === 'SIGKILL') killedMidway++;

    if (existsSync(join(store, 'oci-layout'))) {
      const report = await fsck(await openLayout(store), { clean: true });
      t.same({ corrupt: report.corrupt, missing: report.missing, problems: report.problems }, { corrupt: [], missing: [], problems: [] }, `kill ${i}: store consistent`);
    }
    // The re-run in-process (same code as the CLI, without another Node start-up).
    const rerun = await copyImage({ src: remote, dst });
    t.equal(rerun.descriptor.digest, img.manifest.desc.digest, `kill ${i}: re-run completes`);
    const after = await fsck(await openLayout(store), { clean: true });
    t.same({ ok: after.ok, dangling: after.dangling, blobs: after.blobs }, { ok: true, dangling: [], blobs: 5 }, `kill ${i}: complete store after the re-run`);
    t.same((await fsck(await openLayout(store))).strays, [], `kill ${i}: temp files of the dead writer cleaned`);
  }
  t.ok(killedMidway >= KILLS / 2, `most kills landed before the copy finished (${killedMidway}/${KILLS})`);
});
