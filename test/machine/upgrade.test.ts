import { t } from 'tap';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { runCli } from '../support/cli.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { currentGeneration } from '../../src/config/index.js';
import { install, readTracked, update } from '../../src/machine/index.js';
import { parseImageManifest } from '../../src/oci/index.js';
import { treeHash } from '../support/tree.js';

// The upgrade workflow (operator issue, findings 4 and 9): install and complete updates record the
// source; `upgrade --check` re-resolves it (exit 100 when an update exists, with its size) and writes
// nothing; `upgrade` applies it; `switch` changes it; and updating to the manifest already installed
// re-fetches an image whose blob went missing instead of answering "already up to date".
const skip = needs({ root: true, programs: ['mksquashfs'] });

t.test('upgrade, switch and repair by update', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-upgrade-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const layout = join(work, 'pub');
  const repo = `oci:${layout}`;
  const pub = (tag: string, targets: string[], updateType: 'complete' | 'partial' = 'complete') => publishYaml({ dir: work, yaml: manifestYaml({ targets, updateType }), repo, name: `machine/install:${tag}`, pki });
  const v1 = await pub('stable', [T.hostfs(images), T.data(images)]);
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference });
  const mosctl = (...args: string[]) => runCli('mosctl', ['--root', root, ...args]);

  await t.test('install records its source; upgrade --check says up to date', async (t) => {
    t.match(await readTracked(root), { source: v1.reference });
    const r = await mosctl('upgrade', '--check');
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^up to date with oci:.*:stable \(generation 1\)\n$/);
  });

  await t.test('the tag moves: --check exits 100 with the size and writes nothing; upgrade applies it', async (t) => {
    const v11 = await pub('stable', [T.hostfs(images, '1.1'), T.data(images)]);
    t.equal(v11.reference, v1.reference, 'the same tag, now naming release 1.1');
    const check = await mosctl('upgrade', '--check');
    t.equal(check.code, 100, check.stderr);
    t.match(check.stdout, /^update available: .*stable names manifest [0-9a-f]{12}; \d+ bytes to fetch; hostfs changes \(reboot\)\nCHANGE +TARGET +VERSION\nchanged +hostfs +1\.0\.0 -> 1\.1\.0\n/);
    t.equal((await currentGeneration({ root })).number, 1, 'a check commits nothing');
    const json = await mosctl('--json', 'upgrade', '--check');
    t.match(json.json, { available: true, source: v1.reference, dryRun: true });
    const up = await mosctl('upgrade');
    t.equal(up.code, 0, up.stderr);
    t.match(up.stdout, /updated to generation 2/);
    t.match(up.stdout, /reboot required: the hostfs target changed/);
    t.equal((await mosctl('upgrade', '--check')).code, 0, 'then up to date');
  });

  await t.test('a partial add-on keeps the tracked source; switch changes it', async (t) => {
    const before = await readTracked(root);
    const extra = await pub('extra', [T.extra(images)], 'partial');
    await update({ root, source: extra.reference });
    t.same(await readTracked(root), before, 'a partial update does not replace what the system follows');
    const beta = await pub('beta', [T.hostfs(images, '1.1'), T.data(images), T.extra(images)]);
    const dry = await mosctl('switch', beta.reference, '--dry-run');
    t.equal(dry.code, 0, dry.stderr);
    t.same(await readTracked(root), before, 'a dry run tracks nothing');
    const sw = await mosctl('switch', beta.reference);
    t.equal(sw.code, 0, sw.stderr);
    t.match(sw.stdout, /^now tracking oci:.*:beta\nupdated to generation 4 \([0-9a-f]{12}\); fetched 0 blob bytes\nno target changes: the same images, now from manifest [0-9a-f]{12}\n/);
    t.match(await readTracked(root), { source: beta.reference });
  });

  await t.test('a removed layer blob: updating to the same manifest fetches it again', async (t) => {
    const tracked = (await readTracked(root))!;
    const blobs = join(root, 'atomfs-store', 'mos', 'blobs', 'sha256');
    const digest = images.digests['hostfs-1.1']!;
    const manifest = parseImageManifest(readFileSync(join(blobs, digest.slice(7))), 'hostfs 1.1');
    const layer = join(blobs, manifest.layers[0]!.digest.slice(7));
    chmodSync(layer, 0o644);
    rmSync(layer);
    const gen = (await currentGeneration({ root })).number;
    const r = await mosctl('update', tracked.source);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, new RegExp(`^already up to date \\(generation ${gen}\\); fetched the incomplete images of hostfs again \\(\\d+ bytes\\)\\n`));
    t.ok(existsSync(layer), 'the layer is back');
    const fsck = await mosctl('fsck');
    t.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    t.equal((await currentGeneration({ root })).number, gen, 'nothing committed');
  });

  await t.test('fsck --repair: a corrupt layer is removed and fetched again from where its manifest came', async (t) => {
    const blobs = join(root, 'atomfs-store', 'mos', 'blobs', 'sha256');
    const manifest = parseImageManifest(readFileSync(join(blobs, images.digests['hostfs-1.1']!.slice(7))), 'hostfs 1.1');
    const layer = join(blobs, manifest.layers[0]!.digest.slice(7));
    const corrupt = () => {
      const b = readFileSync(layer);
      b[b.length >> 1] = b[b.length >> 1]! ^ 0xff;
      chmodSync(layer, 0o644);
      writeFileSync(layer, b);
      chmodSync(layer, 0o444);
    };
    corrupt();
    const found = await mosctl('fsck', '--skip-signatures');
    t.equal(found.code, 5, 'fsck finds it');
    t.match(found.stdout, new RegExp(`${manifest.layers[0]!.digest.slice(7, 19)}`));
    // The dry run: what would be removed and fetched (the source is checked), nothing changed.
    const before = [...treeHash(root)];
    const dry = await mosctl('fsck', '--repair', '--dry-run');
    t.equal(dry.code, 5, 'the damage is still a finding');
    t.match(dry.stdout, new RegExp(`^would remove corrupt blob ${manifest.layers[0]!.digest}\nwould repair hostfs from oci:.*:beta\nwould fetch (\\d+) blob bytes \\(dry run; nothing changed\\)\n`));
    t.ok(Number(/would fetch (\d+)/.exec(dry.stdout)?.[1]) >= manifest.layers[0]!.size, 'the corrupt layer counts in what would be fetched');
    t.same([...treeHash(root)], before, 'the dry run changed nothing (the corrupt blob is still there)');
    const wrong = await mosctl('fsck', '--repair', '--source', `${repo}:stable`);
    t.equal(wrong.code, 5, 'a source naming another manifest is not used');
    t.match(wrong.stdout, /could not repair hostfs: .*:stable now names install manifest [0-9a-f]{12}, not [0-9a-f]{12}/);
    t.match(wrong.stdout, /removed corrupt blob sha256:/);
    const fixed = await mosctl('fsck', '--repair');
    t.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    t.match(fixed.stdout, /^repaired hostfs from oci:.*:beta\nfetched \d+ blob bytes\n.*: \d+ blobs, .* MiB, ok\n/);
    t.ok(existsSync(layer));
  });

  await t.test('no tracked source: one clear error', async (t) => {
    rmSync(join(root, 'config', 'source.json'));
    const r = await mosctl('upgrade');
    t.equal(r.code, 6);
    t.match(r.stderr, /this system tracks no source\nhint: name one with mosctl switch SOURCE/);
  });
});
