import { t, type Test } from 'tap';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProgressEvent } from '../../src/base/index.js';
import { copy, fsck, openLayout, type ContentTarget, type Descriptor, type LayoutStore } from '../../src/oci/index.js';
import { buildImage, buildIndex, pushImage } from './layout-fixture.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/copy');

async function twoStores(t: Test): Promise<{ src: LayoutStore; dst: LayoutStore }> {
  const dir = t.testdir({});
  return { src: await openLayout(join(dir, 'src'), { create: true }), dst: await openLayout(join(dir, 'dst'), { create: true }) };
}

t.test('layout -> layout: exact bytes, tag, progress; a second copy transfers nothing', async (t) => {
  const { src, dst } = await twoStores(t);
  const img = buildImage({ layers: [3_000_000, 1000, 0] });
  await pushImage(src, img, 'v1');
  const events: ProgressEvent[] = [];
  const r = await copy({ src, dst, reference: 'v1', tag: img.manifest.desc.digest, onProgress: (e) => events.push(e) });
  t.same(r, { descriptor: img.manifest.desc, blobsCopied: 4, bytesCopied: 3_001_000 + img.config.desc.size, blobsSkipped: 0, manifestsCopied: 1 });
  t.ok((await readFile(dst.blobPath(img.manifest.desc.digest))).equals(img.manifest.bytes), 'manifest bytes exact');
  t.equal((await dst.resolve(img.manifest.desc.digest)).digest, img.manifest.desc.digest, 'tagged by full digest');
  t.ok((await fsck(dst)).ok);
  const big = img.layers[0]!.desc.digest;
  const bigEvents = events.filter((e) => e.kind === 'blob' && e.digest === big) as Extract<ProgressEvent, { kind: 'blob' }>[];
  t.ok(bigEvents.length >= 3, 'several progress events for a 3 MB blob');
  t.same(bigEvents.at(-1), { kind: 'blob', digest: big, done: 3_000_000, total: 3_000_000 });
  t.equal(events.filter((e) => e.kind === 'blob-done').length, 4);

  const again = await copy({ src, dst, reference: 'v1', tag: 'second' });
  t.same([again.blobsCopied, again.bytesCopied, again.blobsSkipped], [0, 0, 4]);
  t.equal((await dst.resolve('second')).digest, img.manifest.desc.digest, 'tag added although everything was present');
});

t.test('by digest, whole index, one platform, shared blobs copied once', async (t) => {
  const { src, dst } = await twoStores(t);
  const shared = rnd.bytes(5000);
  const amd = buildImage({ label: 'amd64', layers: [shared, 100] });
  const arm = buildImage({ label: 'arm64', layers: [shared, 200] });
  await pushImage(src, amd);
  await pushImage(src, arm);
  const idx = buildIndex([amd.manifest.desc, arm.manifest.desc]);
  await src.pushManifest(idx.desc, idx.bytes, { tag: 'multi' });

  const one = await copy({ src, dst, reference: 'multi', platform: { architecture: 'arm64', os: 'linux' }, tag: 'arm' });
  t.equal(one.descriptor.digest, arm.manifest.desc.digest, 'the arm64 manifest is the result');
  t.equal(await dst.exists(amd.manifest.desc), false, 'the amd64 manifest was not copied');
  await t.rejects(copy({ src, dst, reference: 'multi', platform: { architecture: 'mips', os: 'linux' } }), { code: 'OCI_MANIFEST_UNKNOWN', message: /linux\/mips/ });

  const all = await copy({ src, dst, reference: idx.desc.digest, tag: 'multi' });
  t.equal(all.manifestsCopied, 2, 'amd64 manifest + index (arm64 was there)');
  t.equal(all.blobsCopied, 2, 'amd64 config + amd64-only layer; the shared layer was present');
  t.ok((await fsck(dst)).ok);
  t.same((await fsck(dst)).dangling, []);
  await t.rejects(copy({ src, dst, reference: 'nope' }), { code: 'OCI_TAG_UNKNOWN' });
});

t.test('a corrupt source blob: OCI_DIGEST_MISMATCH, no manifest or tag in dst, other transfers stopped', async (t) => {
  const { src, dst } = await twoStores(t);
  const img = buildImage({ layers: [200_000, 200_000, 200_000] });
  await pushImage(src, img, 'v1');
  const victim = src.blobPath(img.layers[1]!.desc.digest);
  await chmod(victim, 0o644);
  const bad = Buffer.from(img.layers[1]!.bytes);
  bad[1000] = bad[1000]! ^ 0xff;
  await writeFile(victim, bad);
  await t.rejects(copy({ src, dst, reference: 'v1', tag: 'v1' }), { code: 'OCI_DIGEST_MISMATCH' });
  t.equal(await dst.exists(img.layers[1]!.desc), false, 'the corrupt blob was not stored');
  t.equal(await dst.exists(img.manifest.desc), false, 'no manifest without its children');
  await t.rejects(dst.resolve('v1'), { code: 'OCI_TAG_UNKNOWN' });
  const report = await fsck(dst);
  t.ok(report.ok, 'dst consistent');
  t.same(report.strays, [], 'no temp file left');
});

t.test('a manifest missing children in dst is repaired by a re-run', async (t) => {
  const { src, dst } = await twoStores(t);
  const img = buildImage({ layers: [1000, 2000] });
  await pushImage(src, img, 'v1');
  await copy({ src, dst, reference: 'v1', tag: 'v1' });
  await rm(dst.blobPath(img.layers[0]!.desc.digest));
  t.same((await fsck(dst)).missing, [img.layers[0]!.desc.digest]);
  const r = await copy({ src, dst, reference: 'v1', tag: 'v1' });
  t.equal(r.blobsCopied, 1);
  t.ok((await fsck(dst)).ok);
});

t.test('blob transfers stay within the concurrency bound', async (t) => {
  const { src, dst } = await twoStores(t);
  const img = buildImage({ layers: Array.from({ length: 12 }, () => 50_000) });
  await pushImage(src, img, 'v1');
  let inFlight = 0;
  let peak = 0;
  // A real store, observed: every call goes through to the layout.
  const observed: ContentTarget = {
    exists: (d: Descriptor) => dst.exists(d),
    pushManifest: (d, b, o) => dst.pushManifest(d, b, o),
    tag: (d, tag) => dst.tag(d, tag),
    pushBlob: async (d, c) => {
      peak = Math.max(peak, ++inFlight);
      try {
        await new Promise((r) => setTimeout(r, 5));
        await dst.pushBlob(d, c);
      } finally {
        inFlight--;
      }
    },
  };
  await copy({ src, dst: observed, reference: 'v1', concurrency: 3 });
  t.equal(peak, 3, 'three at once, never more');
  t.ok((await fsck(dst)).ok);
});
