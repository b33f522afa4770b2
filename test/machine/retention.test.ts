import { t } from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { runCli } from '../support/cli.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { history, install, rollback, setPin, systemGc, update, markGood } from '../../src/machine/index.js';

// Retention (operator issue, finding 5): gc --keep N lets old generations' images go while history
// keeps their commits; the current and the previous generation and pinned ones always keep theirs.
const skip = needs({ root: true, programs: ['mksquashfs'] });

t.test('gc --keep, pin and unpin', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-retention-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const repo = `oci:${join(work, 'pub')}`;
  const pub = (name: string, targets: string[], updateType: 'complete' | 'partial' = 'complete') => publishYaml({ dir: work, yaml: manifestYaml({ targets, updateType }), repo, name, pki });
  const v1 = await pub('machine/install:1.0', [T.hostfs(images), T.data(images)]);
  const v11 = await pub('machine/install:1.1', [T.hostfs(images, '1.1'), T.data(images)]);
  const extra = await pub('machine/install:extra', [T.extra(images)], 'partial');
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference }); // 1: hostfs 1.0
  await update({ root, source: v11.reference }); // 2: hostfs 1.1
  await update({ root, source: extra.reference }); // 3: + extra
  await update({ root, source: extra.reference, allowDowngrade: false }).catch(() => undefined); // a no-op: still 3
  await rollback({ root, to: 2 }); // 4: as 2
  await markGood(root); // 4 is the good generation (a good generation's images are always kept: boot-assessment.test.ts)
  const store = join(root, 'atomfs-store', 'mos');
  const hostfs10 = images.digests['hostfs-1.0']!;
  const has = async (digest: string) => existsSync(join(store, 'blobs', 'sha256', digest.slice('sha256:'.length)));

  await t.test('without --keep every generation keeps its images', async (t) => {
    const r = await systemGc({ root, dryRun: true });
    t.same(r.prunedGenerations, []);
    t.same(r.keptGenerations, [1, 2, 3, 4]);
    t.equal(r.removed.length, 0);
  });

  await t.test('--keep 1: the newest and the previous generation (rollback) keep theirs', async (t) => {
    const r = await systemGc({ root, dryRun: true, keep: 1 });
    t.same(r.keptGenerations, [3, 4]);
    t.same(r.prunedGenerations, [1, 2]);
    t.ok(r.removed.some((x) => x.digest === hostfs10), 'hostfs 1.0 (only generation 1 has it) would go');
    t.ok(await has(hostfs10), 'a dry run removes nothing');
  });

  await t.test('a pinned generation keeps its images', async (t) => {
    const p = await setPin({ root, ref: 1, pinned: true });
    t.match(p, { generation: 1, pinned: true, pins: [1] });
    const r = await systemGc({ root, dryRun: true, keep: 1 });
    t.same(r.keptGenerations, [1, 3, 4]);
    t.notOk(r.removed.some((x) => x.digest === hostfs10));
    t.match((await history({ root }))[0], { number: 1, pinned: true });
    const cli = await runCli('mosctl', ['--root', root, 'history']);
    t.match(cli.stdout, /\n1 pinned +[0-9a-f]{12} /);
  });

  await t.test('unpinned and collected: history keeps the commit, rollback to it says why it cannot', async (t) => {
    const u = await runCli('mosctl', ['--root', root, 'unpin', '1']);
    t.equal(u.code, 0, u.stderr);
    t.match(u.stdout, /^generation 1 \([0-9a-f]{12}\) unpinned; pinned: none\n/);
    const g = await runCli('mosctl', ['--root', root, 'gc', '--keep', '1']);
    t.equal(g.code, 0, g.stderr);
    t.match(g.stdout, /generations 1, 2: history kept, images gone/);
    t.notOk(await has(hostfs10), 'hostfs 1.0 is gone');
    t.equal((await history({ root })).length, 4, 'every generation is still in history');
    await t.rejects(rollback({ root, to: 1 }), { code: 'OCI_MANIFEST_UNKNOWN', message: /no longer in the store/ });
    const ok = await rollback({ root, to: 3 });
    t.equal(ok.to, 3, 'a kept generation still rolls back');
    t.ok(existsSync(join(root, 'config', 'pins.json')));
  });

  await t.test('bad input: one clear error, nothing changes', async (t) => {
    const k0 = await runCli('mosctl', ['--root', root, 'gc', '--keep', '0']);
    t.equal(k0.code, 2);
    t.match(k0.stderr, /--keep/);
    const p99 = await runCli('mosctl', ['--root', root, 'pin', '99']);
    t.equal(p99.code, 6);
    t.match(p99.stderr, /there is no generation 99/);
    t.match(await setPin({ root, ref: 3, pinned: false }), { pins: [] }, 'unpinning what is not pinned is a no-op');
  });
});
