import { t } from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { copy, fsck, openLayout } from '../../src/oci/index.js';
import { needs } from '../support/env.js';
import { buildImage, pushImage } from './layout-fixture.js';

// Layouts we write must be read by skopeo/umoci, and theirs by us, with the same digests.

async function skopeoDigest(ref: string): Promise<string> {
  return (JSON.parse((await exec(['skopeo', 'inspect', ref])).stdout) as { Digest: string }).Digest;
}

t.test('skopeo and umoci read layouts we write (tags with ":" too)', { skip: needs({ programs: ['skopeo', 'umoci'] }) }, async (t) => {
  const dir = t.testdir({});
  const store = await openLayout(join(dir, 'ours'), { create: true });
  const img = buildImage({ layers: [40_000, 1234] });
  const digest = img.manifest.desc.digest;
  await pushImage(store, img, 'v1');
  await store.tag(img.manifest.desc, digest); // mos tags by full digest; our .lock and ingest/ are present too

  const raw = await exec(['skopeo', 'inspect', '--raw', `oci:${store.dir}:v1`]);
  t.equal(raw.stdout, new TextDecoder().decode(img.manifest.bytes), 'skopeo inspect --raw: the exact manifest bytes');
  t.equal(await skopeoDigest(`oci:${store.dir}:v1`), digest);
  t.equal(await skopeoDigest(`oci:${store.dir}:${digest}`), digest, 'a full-digest tag works for skopeo');

  // Our test layers are uncompressed tar: without --preserve-digests skopeo would gzip them.
  const out = join(dir, 'skopeo-out');
  await exec(['skopeo', 'copy', '--quiet', '--preserve-digests', `oci:${store.dir}:${digest}`, `oci:${out}:copied`]);
  t.equal(await skopeoDigest(`oci:${out}:copied`), digest, 'skopeo copy keeps the digest');
  t.equal((await (await openLayout(out)).resolve('copied')).digest, digest, 'we read skopeo’s copy');

  const ls = await exec(['umoci', 'ls', '--layout', store.dir]);
  t.same(ls.stdout.trim().split('\n').sort(), [digest, 'v1'].sort(), 'umoci lists our tags');
});

t.test('we read layouts umoci and skopeo write, with equal digests', { skip: needs({ programs: ['skopeo', 'umoci'] }) }, async (t) => {
  const dir = t.testdir({ file: 'hello from a umoci layer\n' });
  const lay = join(dir, 'umoci');
  await exec(['umoci', 'init', '--layout', lay]);
  await exec(['umoci', 'new', '--image', `${lay}:base`]);
  await exec(['umoci', 'insert', '--image', `${lay}:base`, join(dir, 'file'), '/etc/hello']);
  await exec(['umoci', 'config', '--image', `${lay}:base`, '--config.entrypoint', '/bin/sh']);
  const theirs = await skopeoDigest(`oci:${lay}:base`);

  const umociStore = await openLayout(lay);
  const desc = await umociStore.resolve('base');
  t.equal(desc.digest, theirs, 'umoci layout: same digest');
  t.ok((await fsck(umociStore)).ok, 'fsck accepts umoci’s layout');

  const sk = join(dir, 'skopeo');
  await exec(['skopeo', 'copy', '--quiet', `oci:${lay}:base`, `oci:${sk}:again`]);
  const skStore = await openLayout(sk);
  t.equal((await skStore.resolve('again')).digest, await skopeoDigest(`oci:${sk}:again`), 'skopeo layout: same digest');

  const ours = await openLayout(join(dir, 'ours'), { create: true });
  const r = await copy({ src: skStore, dst: ours, reference: 'again', tag: 'mine' });
  t.equal(r.descriptor.digest, await skopeoDigest(`oci:${sk}:again`));
  const manifestPath = ours.blobPath(r.descriptor.digest);
  t.ok((await readFile(manifestPath)).equals(await readFile(skStore.blobPath(r.descriptor.digest))), 'manifest bytes identical');
  t.equal(await skopeoDigest(`oci:${ours.dir}:mine`), r.descriptor.digest, 'and skopeo reads our copy back');
});
