import { t } from 'tap';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { sha256Hex } from '../../src/base/index.js';
import { commitGeneration, createConfigRepo } from '../../src/config/index.js';
import { serializeInstallFile, serializeSysManifest, type InstallFile } from '../../src/manifest/index.js';
import { openLayout } from '../../src/oci/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { buildImage, pushImage } from './layout-fixture.js';

// mosctl gc / fsck on a system root: roots come from every generation of config/manifest.git.

const skip = needs({ programs: ['git', 'flock'] });

function generation(targets: [string, string][]): Map<string, Uint8Array> {
  const net = { type: 'host' as const, ipv4: '', ipv6: '', ports: null };
  const file: InstallFile = {
    version: 1,
    product: 'de6c82c5-2e01-4c92-949b-a6545d30fc06',
    storage: null,
    targets: targets.map(([name, digest], i) => ({
      service_name: name, version: '1.0.0', service_type: i === 0 ? 'hostfs' : 'fs-only', network: net, nsgroup: '', digest, storage: null, size: 100,
    })),
    update_type: 'complete',
  };
  const raw = serializeInstallFile(file);
  const sha = sha256Hex(raw);
  const sys = serializeSysManifest({ uidmaps: null, targets: targets.map(([name]) => ({ name, source: `${sha}.json` })), storage: null });
  return new Map([['manifest.json', sys], [`${sha}.json`, raw]]);
}

t.test('mosctl gc keeps every generation’s targets; fsck finds corruption and missing targets', { skip }, async (t) => {
  const root = t.testdir({});
  const store = await openLayout(join(root, 'atomfs-store', 'mos'), { create: true });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((label) => buildImage({ label, layers: [1000 + label.charCodeAt(0)] }));
  for (const img of [a!, b!, c!, d!]) await pushImage(store, img, img.manifest.desc.digest);
  const digest = (img: typeof a) => img!.manifest.desc.digest;

  const noConfig = await runCli('mosctl', ['gc', '--root', root]);
  t.equal(noConfig.code, 6, 'no system installed: nothing to compute roots from');
  t.equal((await store.listTags()).length, 4, 'and nothing removed');
  t.notOk(existsSync(join(root, 'config')), 'nor config/ created');

  await createConfigRepo({ root, files: generation([['hostfs', digest(a)], ['web', digest(b)]]), message: 'Initial commit' });
  await commitGeneration({ root, files: generation([['hostfs', digest(a)], ['web', digest(c)]]), message: 'System upgrade' });
  const indexBefore = await readFile(join(store.dir, 'index.json'));

  const dry = await runCli('mosctl', ['--json', 'gc', '--dry-run', '--root', root]);
  t.equal(dry.code, 0, dry.stderr);
  const dropped = [digest(d), d!.config.desc.digest, d!.layers[0]!.desc.digest].sort();
  t.match(dry.json, { dryRun: true, generations: 2, untagged: [digest(d)] });
  t.same((dry.json as { removed: { digest: string }[] }).removed.map((r) => r.digest).sort(), dropped);
  t.ok((await readFile(join(store.dir, 'index.json'))).equals(indexBefore), 'dry run changed nothing');

  const done = await runCli('mosctl', ['gc', '--root', root]);
  t.equal(done.code, 0, done.stderr);
  t.match(done.stdout, /^removed 3 blobs/);
  t.same((await store.listTags()).map((x) => x.tag).sort(), [digest(a), digest(b), digest(c)].sort(), 'generation 1’s image is kept for rollback');
  t.equal(await store.exists(d!.layers[0]!.desc), false);

  const ok = await runCli('mosctl', ['--json', 'fsck', '--skip-signatures', '--root', root]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.json, { ok: true, installed: true, missingTargets: [], dangling: [] });

  const layer = store.blobPath(c!.layers[0]!.desc.digest);
  await chmod(layer, 0o644);
  await writeFile(layer, Buffer.alloc(c!.layers[0]!.desc.size));
  const bad = await runCli('mosctl', ['fsck', '--skip-signatures', '--root', root]);
  t.equal(bad.code, 5, 'integrity problems exit 5');
  t.match(bad.stdout, new RegExp(`${c!.layers[0]!.desc.digest}: content does not hash to its name`));

  await store.untag(digest(c));
  await rm(store.blobPath(digest(c)));
  const missing = await runCli('mosctl', ['--json', 'fsck', '--skip-signatures', '--root', root]);
  t.equal(missing.code, 5);
  t.match(missing.json, { ok: false, missingTargets: [`web@${digest(c)}`] });

  const usage = await runCli('mosctl', ['gc', '--dry-run', '--force', '--root', root]);
  t.equal(usage.code, 2, '--dry-run and --force conflict');
});
