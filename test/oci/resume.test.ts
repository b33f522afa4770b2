import { t, type Test } from 'tap';
import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../../src/base/index.js';
import { tryFlock } from '../../src/host/index.js';
import { OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, copy, fsck, gc, openLayout, openRepository, sweepStrays, type Descriptor } from '../../src/oci/index.js';
import { startFakeRegistry } from '../support/fake-registry.js';
import { testRandom } from '../support/random.js';

// Resumable downloads: a killed pull leaves `ingest/<alg>-<hex>.partial`; the next copy into the layout
// re-hashes that part and asks the registry only for the rest (Range), and anything wrong with the part
// on disk (corrupt, too long) or with the server (Range ignored) still ends in a verified blob.

const rnd = testRandom('resume');
const LAYER = 3 * 1024 * 1024 + 17;

async function fixture(t: Test, opts: { ignoreRange?: boolean } = {}) {
  const ranges: string[] = [];
  const fake = await startFakeRegistry(t, {
    hook: (req, _res, url) => {
      if (req.method === 'GET' && url.pathname.includes('/blobs/')) {
        ranges.push(String(req.headers.range ?? ''));
        if (opts.ignoreRange) delete req.headers.range;
      }
      return false;
    },
  });
  const layer = Buffer.from(rnd.bytes(LAYER));
  const layerDesc = { ...fake.putBlob(layer), mediaType: OCI_LAYER_TAR };
  const config = { ...fake.putBlob('{}'), mediaType: OCI_CONFIG };
  const manifest = fake.putManifest(OCI_MANIFEST, JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layerDesc] }), 'v1');
  const dir = join(t.testdir({}), 'store');
  const store = await openLayout(dir, { create: true });
  const partial = join(dir, 'ingest', `sha256-${layerDesc.digest.slice(7)}.partial`);
  const repo = () => openRepository({ host: fake.host, name: 'x', plainHttp: true });
  return { fake, layer, layerDesc, manifest, dir, store, partial, ranges, repo };
}

t.test('a partial file a killed run left is resumed with Range: only the rest is fetched', async (t) => {
  const f = await fixture(t);
  const half = 1024 * 1024 + 5;
  await writeFile(f.partial, f.layer.subarray(0, half));
  const src = f.repo();
  await copy({ src, dst: f.store, reference: 'v1', tag: 'v1' });
  t.same(f.ranges.filter(Boolean), [`bytes=${half}-`], 'the layer was asked for from the end of the partial file');
  t.equal(src.stats.blobBytesFetched, LAYER - half + 2, 'bytes fetched: the rest of the layer and the 2-byte config');
  t.same(await readFile(join(f.dir, 'blobs', 'sha256', f.layerDesc.digest.slice(7))), f.layer, 'the stored layer is whole');
  t.same(await readdir(join(f.dir, 'ingest')), [], 'the partial file became the blob');
  t.ok((await fsck(f.store)).ok, 'fsck-clean');
});

t.test('a corrupt partial file is detected by the digest and the blob fetched again whole', async (t) => {
  const f = await fixture(t);
  const bad = Buffer.from(f.layer.subarray(0, 2 * 1024 * 1024));
  bad[1000] = bad[1000]! ^ 0xff;
  await writeFile(f.partial, bad);
  const src = f.repo();
  await copy({ src, dst: f.store, reference: 'v1', tag: 'v1' });
  t.same(f.ranges.filter(Boolean), [`bytes=${bad.length}-`], 'first the rest was asked for');
  t.equal(f.ranges.filter((r) => r === '').length, 2, 'then the whole layer (and the config) without Range');
  t.same(await readFile(join(f.dir, 'blobs', 'sha256', f.layerDesc.digest.slice(7))), f.layer);
  t.ok((await fsck(f.store)).ok);
});

t.test('a partial file longer than the blob is discarded', async (t) => {
  const f = await fixture(t);
  await writeFile(f.partial, Buffer.concat([f.layer, Buffer.from('extra')]));
  await copy({ src: f.repo(), dst: f.store, reference: 'v1', tag: 'v1' });
  t.same(f.ranges.filter(Boolean), [], 'no Range asked');
  t.same(await readFile(join(f.dir, 'blobs', 'sha256', f.layerDesc.digest.slice(7))), f.layer);
});

t.test('a complete partial file (killed before its rename) is checked and stored with no request for it', async (t) => {
  const f = await fixture(t);
  await writeFile(f.partial, f.layer);
  const src = f.repo();
  await copy({ src, dst: f.store, reference: 'v1', tag: 'v1' });
  t.equal(src.stats.blobBytesFetched, 2, 'only the config was fetched');
  t.ok((await fsck(f.store)).ok);
});

t.test('a server that ignores Range: the whole blob is downloaded and the result still verifies', async (t) => {
  const f = await fixture(t, { ignoreRange: true });
  const half = 1024 * 1024;
  await writeFile(f.partial, f.layer.subarray(0, half));
  const src = f.repo();
  await copy({ src, dst: f.store, reference: 'v1', tag: 'v1' });
  t.equal(src.stats.blobBytesFetched, LAYER + 2, 'the whole layer came again (a 200, the part on disk skipped)');
  t.same(await readFile(join(f.dir, 'blobs', 'sha256', f.layerDesc.digest.slice(7))), f.layer);
});

t.test('a download another process is running (its partial file locked) is left alone', async (t) => {
  const f = await fixture(t);
  await writeFile(f.partial, f.layer.subarray(0, 1000));
  const other = await open(f.partial, 'r');
  t.teardown(() => other.close());
  t.ok(tryFlock(other, f.partial), 'a second open file description holds the lock');
  await copy({ src: f.repo(), dst: f.store, reference: 'v1', tag: 'v1' });
  t.same(f.ranges.filter(Boolean), [], 'downloaded apart, from the start');
  t.equal((await readFile(f.partial)).length, 1000, 'the locked partial file is untouched');
  t.ok((await fsck(f.store)).ok);
  await fsck(f.store, { clean: true });
  t.equal((await readFile(f.partial)).length, 1000, 'fsck --clean leaves a live download alone');
});

t.test('stray handling: a pull keeps a resumable file, fsck --clean and gc remove it', async (t) => {
  const f = await fixture(t);
  await writeFile(f.partial, f.layer.subarray(0, 1000));
  await writeFile(join(f.dir, 'ingest', '0123456789abcdef-999999999-00ff00ff'), 'crashed stream write');
  t.same(await sweepStrays(f.store), [join(f.dir, 'ingest', '0123456789abcdef-999999999-00ff00ff')], 'the sweep before a pull removes only the stream temp file');
  t.same(await readdir(join(f.dir, 'ingest')), [f.partial.split('/').pop()]);
  t.same((await fsck(f.store)).strays, [f.partial], 'fsck lists it');
  t.same((await gc(f.store, { roots: [], dryRun: true })).strays, [f.partial], 'gc would remove it');
  await fsck(f.store, { clean: true });
  t.same(await readdir(join(f.dir, 'ingest')), [], 'fsck --clean removed it');
});

t.test('a failed download removes its partial file (a clean failure leaves nothing)', async (t) => {
  const f = await fixture(t);
  const wrong: Descriptor = { ...f.layerDesc, digest: sha256Digest(Buffer.from('not it')) };
  f.fake.blobs.set(wrong.digest, f.layer); // served under a digest it does not hash to
  await t.rejects(f.store.pushBlob(wrong, (offset) => f.repo().fetchBlob(wrong, { offset })), { code: 'OCI_DIGEST_MISMATCH' });
  t.same(await readdir(join(f.dir, 'ingest')), []);
});
