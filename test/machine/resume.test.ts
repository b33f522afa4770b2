import { t } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../../src/build/index.js';
import { openLayout, parseImageManifest } from '../../src/oci/index.js';
import { TEST_DOWNLOADER_UID, childEnv, cliPath, plainNode, runCli } from '../support/cli.js';
import { childPids, procUids } from '../support/lxc.js';
import { needs } from '../support/env.js';
import { killCount, spreadKills } from '../support/kills.js';
import { mintPki } from '../support/pki.js';
import { testRandom } from '../support/random.js';
import { startRegistry } from '../support/registry.js';
import { startSlowProxy } from '../support/slow-proxy.js';
import { makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';

// Resumable pulls across restarts: `mosctl install` of a 256 MiB image from a real docker-registry (read
// through mosctl's unprivileged downloader, as by default as root) is SIGKILLed at 10 points (MOSCTL_KILLS) of its download. Each re-run must fetch only what the killed run
// had not written (counted on the registry's side, by a proxy in front of it), and the last one must
// end fsck-clean with nothing left in ingest/.
const skip = needs({ root: true, programs: ['mksquashfs', 'docker-registry'] });
const MiB = 1024 * 1024;
// What a killed run may have received but not yet written: socket buffers, the HTTP client's and our
// 1 MiB write batch. A run that started over instead of resuming would exceed it by the whole prefix.
const IN_FLIGHT = 16 * MiB;

t.test('a pull SIGKILLed at 10 points resumes each time, fetching only the rest', { skip }, async (t) => {
  const rnd = testRandom('resume-kill');
  const work = makeSystemRoot(t, 'mosctl-resume-');
  const pki = await mintPki(t);
  const rootfs = join(work, 'big');
  mkdirSync(rootfs);
  writeFileSync(join(rootfs, 'blob.bin'), randomBytes(256 * MiB));
  const layout = join(work, 'images');
  const images = await openLayout(layout, { create: true });
  const built = await buildImage({ rootfs, dst: images, tag: 'big-1.0' });
  const layerSize = parseImageManifest(await images.fetchBytes(built.descriptor), 'big-1.0').layers[0]!.size;
  const reg = await startRegistry(t);
  const target = `  - {service_name: hostfs, source: "oci:${layout}:big-1.0", version: "1.0.0", service_type: hostfs, network: {type: host}, nsgroup: ""}`;
  await publishYaml({ dir: work, yaml: manifestYaml({ targets: [target] }), repo: reg.host, name: 'machine/install:1', pki });
  // Paced so that a poll every 10 ms sees the download grow in steps of about 1 MiB.
  const proxy = await startSlowProxy(t, reg.host, 128 * MiB);
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const ingest = join(root, 'atomfs-store', 'mos', 'ingest');
  const partialSize = (): number => {
    let names: string[] = [];
    try {
      names = readdirSync(ingest).filter((n) => n.endsWith('.partial'));
    } catch {}
    return Math.max(0, ...names.map((n) => statSync(join(ingest, n)).size));
  };
  const args = ['--root', root, 'install', `${proxy.host}/machine/install:1`];

  const kills = spreadKills(killCount(10), ['download'], rnd);
  let previous = 0;
  for (const [i, k] of kills.entries()) {
    await proxy.idle();
    const before = proxy.bytesDown;
    const child = spawn(...plainNode([cliPath('mosctl'), ...args]), { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    const want = Math.max(previous + 4 * MiB, Math.floor(k.at * layerSize));
    const deadline = Date.now() + 120_000;
    while (partialSize() < want && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.equal(child.exitCode, null, `run ${i + 1}: still pulling at ${(want / MiB).toFixed(1)} MiB`, { diag: stderr });
    if (i === 0) {
      // The download runs in mosctl's downloader child, under its own uid (the CLI default as root).
      const uids = childPids(child.pid!).map((pid) => procUids(pid)[0]);
      t.same(uids, [TEST_DOWNLOADER_UID], 'mosctl has one child, the downloader, running as the downloader uid');
    }
    child.kill('SIGKILL');
    await exited;
    const now = partialSize();
    const fetched = proxy.bytesDown - before;
    t.ok(now >= previous, `run ${i + 1}: the partial file kept what the last run wrote (${(previous / MiB).toFixed(1)} → ${(now / MiB).toFixed(1)} MiB)`);
    t.ok(fetched <= now - previous + IN_FLIGHT, `run ${i + 1}: fetched ${(fetched / MiB).toFixed(1)} MiB, at most the new part (${((now - previous) / MiB).toFixed(1)} MiB) and what was in flight`);
    previous = now;
  }

  await proxy.idle();
  const before = proxy.bytesDown;
  const last = await runCli('mosctl', args);
  t.equal(last.code, 0, 'the last run completes the install', { diag: last.stderr });
  const fetched = proxy.bytesDown - before;
  const rest = layerSize - previous;
  t.ok(fetched >= rest, `the last run fetched the rest (${(fetched / MiB).toFixed(2)} MiB for ${(rest / MiB).toFixed(2)} MiB left)`);
  t.ok(fetched <= rest + 64 * 1024, 'and no more than the rest and the small documents (manifests, config, signature)');
  t.same(readdirSync(ingest), [], 'nothing left in ingest/');
  const fsck = await runCli('mosctl', ['--root', root, 'fsck']);
  t.equal(fsck.code, 0, 'fsck-clean', { diag: fsck.stdout + fsck.stderr });
});
