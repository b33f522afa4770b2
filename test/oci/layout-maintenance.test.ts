import { t } from 'tap';
import { chmod, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { sha256Digest } from '../../src/base/index.js';
import { fsck, gc, openLayout, OCI_LAYER_TAR } from '../../src/oci/index.js';
import { markReachable, planSweep } from '../../src/oci/maintenance-plan.js';
import { buildImage, buildIndex, content, pushImage, stream } from './layout-fixture.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/layout-maintenance');

/** A pid that surely is not running: a child that already exited. */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim());
}

t.test('planning: marking cuts cycles and records where missing nodes were referenced', async (t) => {
  const d = (s: string) => ({ mediaType: 'm', digest: sha256Digest(s), size: 1 });
  const graph: Record<string, string[] | 'absent'> = { a: ['b', 'c'], b: ['a', 'd'], c: [], d: 'absent' };
  const names = new Map(Object.keys(graph).map((k) => [sha256Digest(k), k]));
  const loaded: string[] = [];
  const r = await markReachable([d('a'), d('a')], async (desc) => {
    const name = names.get(desc.digest)!;
    loaded.push(name);
    const g = graph[name]!;
    return g === 'absent' ? { kind: 'absent' } : { kind: 'ok', children: g.map(d) };
  });
  t.same([...r.reachable].map((x) => names.get(x)).sort(), ['a', 'b', 'c']);
  t.same([...r.missing], [[sha256Digest('d'), sha256Digest('b')]]);
  t.same(loaded.sort(), ['a', 'b', 'c', 'd'], 'each node loaded once');
  const plan = planSweep(
    [
      { digest: sha256Digest('1'), size: 1, kind: 'blob' },
      { digest: sha256Digest('2'), size: 1, kind: 'manifest' },
      { digest: sha256Digest('3'), size: 1, kind: 'index' },
      { digest: sha256Digest('a'), size: 1, kind: 'index' },
    ],
    r.reachable,
  );
  t.same(plan.map((c) => c.kind), ['index', 'manifest', 'blob'], 'parents first, reachable kept');
});

t.test('fsck: corrupt, missing, dangling, strays of dead writers cleaned, live ones kept', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const img = buildImage({ layers: [5000, 6000] });
  await pushImage(store, img, 'v1');
  const clean = await fsck(store);
  t.same({ ...clean, bytes: 0 }, { ok: true, blobs: 4, bytes: 0, missing: [], corrupt: [], dangling: [], strays: [], unknownFiles: [], problems: [] });

  const extra = content(rnd.bytes(100), OCI_LAYER_TAR);
  await store.pushBlob(extra.desc, stream(extra.bytes));
  const layer0 = store.blobPath(img.layers[0]!.desc.digest);
  await chmod(layer0, 0o644);
  const bytes = await readFile(layer0);
  bytes[10] = bytes[10]! ^ 1; // same size, different content: only a re-hash finds it
  await writeFile(layer0, bytes);
  await rm(store.blobPath(img.layers[1]!.desc.digest));
  const dead = join(store.dir, 'ingest', `0123456789abcdef-${deadPid()}-00ff00ff`);
  const live = join(store.dir, 'ingest', `0123456789abcdef-${process.pid}-11ff00ff`);
  const deadIndexTmp = join(store.dir, `.index.json.tmp-${deadPid()}-abcdef01`);
  await writeFile(dead, 'partial');
  await writeFile(live, 'in flight');
  await writeFile(deadIndexTmp, '{');
  await writeFile(join(store.dir, 'blobs', 'sha256', 'README'), 'not a blob');

  const r = await fsck(store);
  t.equal(r.ok, false);
  t.same(r.corrupt, [img.layers[0]!.desc.digest]);
  t.same(r.missing, [img.layers[1]!.desc.digest]);
  t.same(r.dangling, [extra.desc.digest]);
  t.same([...r.strays].sort(), [dead, live, deadIndexTmp].sort());
  t.same(r.unknownFiles, [join(store.dir, 'blobs', 'sha256', 'README')]);
  t.match(r.problems.join('\n'), new RegExp(`${img.layers[1]!.desc.digest}: missing \\(referenced by ${img.manifest.desc.digest}\\)`));
  t.same((await readdir(join(store.dir, 'ingest'))).length, 2, 'fsck without clean changes nothing');

  await fsck(store, { clean: true });
  t.same(await readdir(join(store.dir, 'ingest')), [live.split('/').pop()], 'only the live writer’s file is kept');
  t.notOk((await readdir(store.dir)).some((n) => n.includes('.tmp-')), 'dead index temp removed');
});

t.test('gc: keeps roots and their graphs, untags the rest, dry run changes nothing', async (t) => {
  const store = await openLayout(t.testdir(), { create: true });
  const shared = rnd.bytes(3000);
  const keep = buildImage({ label: 'keep', layers: [shared, 1000] });
  const drop = buildImage({ label: 'drop', layers: [shared, 2000] });
  const amd = buildImage({ label: 'amd', layers: [500] });
  await pushImage(store, keep, keep.manifest.desc.digest);
  await pushImage(store, drop, drop.manifest.desc.digest);
  await pushImage(store, amd);
  const idx = buildIndex([amd.manifest.desc]);
  await store.pushManifest(idx.desc, idx.bytes, { tag: 'multi' });
  const orphan = content(rnd.bytes(700), OCI_LAYER_TAR);
  await store.pushBlob(orphan.desc, stream(orphan.bytes));
  const before = await readFile(join(store.dir, 'index.json'));

  await t.rejects(gc(store, { roots: ['sha256:nothex'] }), { code: 'OCI_REFERENCE_INVALID', subject: 'gc roots[0]' });
  const absent = sha256Digest('absent');
  const plan = await gc(store, { roots: [keep.manifest.desc.digest, idx.desc.digest, absent], dryRun: true });
  const dropped = [drop.manifest.desc.digest, drop.config.desc.digest, drop.layers[1]!.desc.digest, orphan.desc.digest];
  t.same(plan.removed.map((r) => r.digest).sort(), [...dropped].sort());
  t.equal(plan.removed[0]!.digest, drop.manifest.desc.digest, 'the manifest goes first');
  t.equal(plan.bytesFreed, drop.manifest.desc.size + drop.config.desc.size + 2000 + 700);
  t.same(plan.untagged, [drop.manifest.desc.digest]);
  t.same(plan.missingRoots, [absent]);
  t.ok((await readFile(join(store.dir, 'index.json'))).equals(before), 'dry run: index.json unchanged');
  t.ok(await store.exists(drop.layers[1]!.desc), 'dry run: blobs still there');

  const done = await gc(store, { roots: [keep.manifest.desc.digest, idx.desc.digest, absent] });
  t.same(done.removed, plan.removed);
  t.same((await store.listTags()).map((x) => x.tag).sort(), [keep.manifest.desc.digest, 'multi'].sort());
  const after = await fsck(store);
  t.ok(after.ok, 'kept graphs intact');
  t.same(after.dangling, []);
  t.equal(after.blobs, 4 + 1 + 3, 'keep: manifest, config, 2 layers; index; amd: manifest, config, layer');
  t.same((await gc(store, { roots: [keep.manifest.desc.digest, idx.desc.digest] })).removed, [], 'idempotent');
});

t.test('fsck reports a malformed index.json as a finding, never stops on it (hostile input #9)', async (t) => {
  const dir = join(t.testdir({}), 'store');
  const store = await openLayout(dir, { create: true });
  const bad = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../etc/passwd', size: 1 }] };
  await writeFile(join(dir, 'index.json'), JSON.stringify(bad));
  const r = await fsck(store);
  t.equal(r.ok, false);
  t.match(r.problems, [/index\.json|sha256:\.\.\/\.\.\/etc\/passwd/]);
});

t.test('a blob that is a symlink, a FIFO or a device is never read as content, and fsck names it (hostile input #2, #3)', async (t) => {
  const top = t.testdir({});
  const dir = join(top, 'store');
  const store = await openLayout(dir, { create: true });
  const img = buildImage({ layers: [4096, 4096] });
  await pushImage(store, img, 'v1');
  const [a, b] = img.layers;
  const pathA = join(dir, 'blobs', 'sha256', a!.desc.digest.slice(7));
  const pathB = join(dir, 'blobs', 'sha256', b!.desc.digest.slice(7));
  // Same bytes outside the layout, then the blob replaced by a symlink to them: it would verify today
  // and could change tomorrow.
  const outside = join(top, 'outside');
  await writeFile(outside, await readFile(pathA));
  await rm(pathA, { force: true });
  await symlink(outside, pathA);
  await rm(pathB, { force: true });
  t.equal(spawnSync('mkfifo', [pathB]).status, 0, 'mkfifo');
  await t.rejects(drain(store.fetchBlob(a!.desc)), { code: 'OCI_BLOB_CORRUPT', message: /symbolic link/ });
  await t.rejects(drain(store.fetchBlob(b!.desc)), { code: 'OCI_BLOB_CORRUPT', message: /not a regular file \(a FIFO\)/ });
  const r = await fsck(store);
  t.equal(r.ok, false);
  t.ok(r.problems.some((p) => p.startsWith(pathA) && /not a regular file/.test(p)), 'the symlink is a finding');
  t.ok(r.problems.some((p) => p.startsWith(pathB) && /not a regular file/.test(p)), 'the FIFO is a finding');
});

async function drain(it: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const _ of it);
}
