import { t } from 'tap';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../../src/base/index.js';
import { ANNOTATION_REF_NAME, OCI_LAYER_TAR, openLayout } from '../../src/oci/index.js';
import { buildImage, buildIndex, content, pushImage, stream } from './layout-fixture.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/layout');

async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

t.test('create is atomic: a new layout appears whole; creations abandoned by a killed process are swept', async (t) => {
  const parent = t.testdir({
    '.store.creating-999999999-0badc0de': { 'index.json': '{}' }, // a dead creator's leftover
    'empty': {}, // an existing empty directory (e.g. a mount point) is filled in place
  });
  const live = join(parent, `.store.creating-${process.ppid}-00000001`); // a live creator's: kept
  await mkdir(live);
  await openLayout(join(parent, 'store'), { create: true });
  t.same(await listDir(join(parent, 'store')), ['blobs', 'index.json', 'ingest', 'oci-layout']);
  t.same((await listDir(parent)).filter((n) => n.startsWith('.')), [`.store.creating-${process.ppid}-00000001`], 'only the live creator\'s directory remains');
  await openLayout(join(parent, 'empty'), { create: true });
  t.ok((await stat(join(parent, 'empty', 'oci-layout'))).isFile(), 'empty directory filled in place');
  // Racing creators all succeed on one layout.
  const racing = join(parent, 'race');
  await Promise.all(Array.from({ length: 6 }, () => openLayout(racing, { create: true })));
  t.same(await listDir(racing), ['blobs', 'index.json', 'ingest', 'oci-layout']);
  t.same((await listDir(parent)).filter((n) => n.startsWith('.race')), [], 'no creation directory left by the race');
});

t.test('create: oci-layout, index.json, blobs/sha256; reopen; refuse missing and foreign dirs', async (t) => {
  const dir = join(t.testdir({ foreign: { 'notes.txt': 'mine' } }), 'store');
  await t.rejects(openLayout(dir), { code: 'NOT_FOUND' }, 'missing layout without create');
  const store = await openLayout(dir, { create: true });
  t.same(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  t.same(JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')).manifests, []);
  t.ok((await stat(join(dir, 'blobs', 'sha256'))).isDirectory());
  t.same(await store.listTags(), []);
  await openLayout(dir); // reopen without create
  await openLayout(dir, { create: true }); // idempotent

  const foreign = join(dir, '..', 'foreign');
  await t.rejects(openLayout(foreign, { create: true }), { code: 'OCI_LAYOUT_INVALID', subject: foreign });
  t.same(await listDir(foreign), ['notes.txt'], 'nothing written into a foreign directory');
  await t.rejects(openLayout(foreign), { code: 'OCI_LAYOUT_INVALID' });

  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion": "2.0.0"}');
  await t.rejects(openLayout(dir), { code: 'OCI_LAYOUT_INVALID', subject: join(dir, 'oci-layout') });
});

t.test('blobs: verified while streaming, 0444, never a partial file under a digest name', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const good = content(rnd.bytes(300_000), OCI_LAYER_TAR);
  await store.pushBlob(good.desc, stream(good.bytes));
  const path = store.blobPath(good.desc.digest);
  t.equal((await stat(path)).mode & 0o777, 0o444);
  t.ok(Buffer.from(await readFile(path)).equals(good.bytes));
  t.ok(await store.exists(good.desc));

  // Present blobs are not read again: a source that would throw is never touched.
  await store.pushBlob(good.desc, (async function* () {
    throw new Error('must not be read');
  })());

  const wrongDigest = { ...good.desc, digest: sha256Digest('other') };
  await t.rejects(store.pushBlob(wrongDigest, stream(good.bytes)), { code: 'OCI_DIGEST_MISMATCH' });
  const tooLong = { ...content(rnd.bytes(10), OCI_LAYER_TAR).desc, size: 5 };
  await t.rejects(store.pushBlob(tooLong, stream(rnd.bytes(10))), { code: 'OCI_SIZE_MISMATCH' });
  const short = content(rnd.bytes(1000), OCI_LAYER_TAR);
  await t.rejects(store.pushBlob(short.desc, stream(short.bytes.subarray(0, 999))), { code: 'OCI_SIZE_MISMATCH' });
  // A source failing half way (network reset) leaves nothing behind either.
  const broken = content(rnd.bytes(2000), OCI_LAYER_TAR);
  await t.rejects(
    store.pushBlob(broken.desc, (async function* () {
      yield broken.bytes.subarray(0, 1000);
      throw new Error('connection reset');
    })()),
    /connection reset/,
  );
  t.same(await listDir(join(store.dir, 'blobs', 'sha256')), [good.desc.digest.slice(7)], 'only the good blob has a digest name');
  t.same(await listDir(join(store.dir, 'ingest')), [], 'no temp file left');

  await t.rejects(store.fetchBytes(short.desc), { code: 'OCI_BLOB_UNKNOWN' });
  const read: Buffer[] = [];
  for await (const c of store.fetchBlob(good.desc)) read.push(Buffer.from(c));
  t.ok(Buffer.concat(read).equals(good.bytes), 'fetchBlob streams the content back');
});

t.test('tags: full-digest tags with ":", retag, untag, resolve by digest', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const a = buildImage({ label: 'a', layers: [100, 200] });
  const b = buildImage({ label: 'b', layers: [300] });
  const digestTag = a.manifest.desc.digest; // mos tags each target by its full digest
  await pushImage(store, a, digestTag);
  await pushImage(store, b, 'latest');
  t.same(await store.resolve(digestTag), { ...a.manifest.desc, annotations: { [ANNOTATION_REF_NAME]: digestTag } });
  t.equal((await store.resolve('latest')).digest, b.manifest.desc.digest);

  await store.tag(a.manifest.desc, 'latest');
  t.equal((await store.resolve('latest')).digest, a.manifest.desc.digest, 'retag moves the tag');
  t.same((await store.listTags()).map((x) => x.tag).sort(), [digestTag, 'latest'].sort());
  t.equal(await store.untag('latest'), true);
  t.equal(await store.untag('latest'), false);
  await t.rejects(store.resolve('latest'), { code: 'OCI_TAG_UNKNOWN' });

  // b is untagged now, but still resolvable by digest (media type read from the blob).
  t.same(await store.resolve(b.manifest.desc.digest), b.manifest.desc);
  await t.rejects(store.resolve(sha256Digest('absent')), { code: 'OCI_MANIFEST_UNKNOWN' });
  await t.rejects(store.tag(a.manifest.desc, 'bad tag'), { code: 'OCI_REFERENCE_INVALID' });
  await t.rejects(store.tag(a.manifest.desc, ''), { code: 'OCI_REFERENCE_INVALID' });
  await t.rejects(store.tag({ ...a.manifest.desc, digest: sha256Digest('nope') }, 'x'), { code: 'OCI_MANIFEST_UNKNOWN' });
  const pushedWrong = { ...a.manifest.desc, digest: sha256Digest('different') };
  await t.rejects(store.pushManifest(pushedWrong, a.manifest.bytes, { tag: 'w' }), { code: 'OCI_DIGEST_MISMATCH' });
  await t.rejects(store.resolve('w'), { code: 'OCI_TAG_UNKNOWN' });
});

t.test('tags: concurrent writers keep every tag (store lock + atomic rewrite)', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const img = buildImage({ layers: [10] });
  await pushImage(store, img);
  const other = await openLayout(store.dir); // a second handle: separate queue, same flock
  await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? store : other).tag(img.manifest.desc, `t${i}`)));
  t.equal((await store.listTags()).length, 12);
  t.same((await listDir(store.dir)).filter((n) => n.includes('.tmp-')), [], 'no temp index files left');
});

t.test('resolve: duplicate tags, nested indexes', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const a = buildImage({ label: 'a', layers: [10] });
  const b = buildImage({ label: 'b', layers: [20] });
  await pushImage(store, a);
  await pushImage(store, b);
  const entry = (d: typeof a.manifest.desc, tag: string) => ({ ...d, annotations: { [ANNOTATION_REF_NAME]: tag } });
  const writeIndex = (manifests: unknown[]) => writeFile(join(store.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));

  await writeIndex([entry(a.manifest.desc, 'dup'), entry(b.manifest.desc, 'dup')]);
  await t.rejects(store.resolve('dup'), { code: 'OCI_TAG_AMBIGUOUS', subject: `${store.dir}:dup` });
  await writeIndex([entry(a.manifest.desc, 'same'), entry(a.manifest.desc, 'same')]);
  t.equal((await store.resolve('same')).digest, a.manifest.desc.digest, 'the same manifest twice is one match');

  const idx = buildIndex([a.manifest.desc, b.manifest.desc], (i) => ({ [ANNOTATION_REF_NAME]: `inner-${i}` }));
  await store.pushManifest(idx.desc, idx.bytes, { tag: 'outer' });
  t.equal((await store.resolve('inner-1')).digest, b.manifest.desc.digest, 'tag found inside a nested index');
  t.equal((await store.resolve('outer')).mediaType, idx.desc.mediaType);
  // Unknown media types and extra fields in index.json are tolerated.
  await writeFile(join(store.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, extra: { x: 1 }, manifests: [{ mediaType: 'application/x-unknown', digest: sha256Digest('u'), size: 1 }, entry(a.manifest.desc, 'ok')] }));
  t.equal((await store.resolve('ok')).digest, a.manifest.desc.digest);
  await store.tag(b.manifest.desc, 'b');
  const rewritten = JSON.parse(await readFile(join(store.dir, 'index.json'), 'utf8'));
  t.same(rewritten.extra, { x: 1 }, 'unknown fields survive a rewrite');
  t.equal(rewritten.manifests.length, 3);
});

t.test('hostile index.json: clear errors, nothing changed', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const img = buildImage({ layers: [10] });
  await pushImage(store, img);
  const path = join(store.dir, 'index.json');
  const cases: [string, string | Buffer, RegExp][] = [
    ['bad JSON', '{"schemaVersion": 2, "manifests": [', /not valid JSON/],
    ['not an object', '[1,2]', /not a JSON object/],
    ['manifests not an array', '{"schemaVersion": 2, "manifests": "x"}', /manifests is not an array/],
    ['schemaVersion', '{"schemaVersion": 1, "manifests": []}', /schemaVersion/],
    ['negative size', `{"schemaVersion": 2, "manifests": [{"mediaType": "a", "digest": "${img.manifest.desc.digest}", "size": -1}]}`, /manifests\[0\].*size/],
    ['bad digest', '{"schemaVersion": 2, "manifests": [{"mediaType": "a", "digest": "sha256:XYZ", "size": 1}]}', /manifests\[0\].*digest/],
    ['annotation not a string', `{"schemaVersion": 2, "manifests": [{"mediaType": "a", "digest": "${img.manifest.desc.digest}", "size": 1, "annotations": {"k": 1}}]}`, /annotations\.k/],
    ['huge', Buffer.alloc(17 * 1024 * 1024, 0x20), /more than/],
  ];
  for (const [name, body, message] of cases) {
    await writeFile(path, body);
    const before = await readFile(path);
    await t.rejects(store.resolve('x'), { code: 'OCI_LAYOUT_INVALID', subject: path, message }, name);
    await t.rejects(store.tag(img.manifest.desc, 'x'), { code: 'OCI_LAYOUT_INVALID' }, `${name}: tag refused`);
    t.ok((await readFile(path)).equals(before), `${name}: index.json unchanged`);
  }
});
