import { t } from 'tap';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { startFakeRegistry } from '../support/fake-registry.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { activate, createBootFs, install, mountTarget, update } from '../../src/machine/index.js';
import { parseImageManifest } from '../../src/oci/index.js';
import { treeHash } from '../support/tree.js';

// Hostile input, finding 1: a failed install leaves the root as it found it, except verified blobs in
// the store's download cache (blobs/ of an otherwise empty layout) that the next run reuses. Checked with
// a hash of the whole tree before and after.
const skip = needs({ root: true, programs: ['mksquashfs'] });


t.test('a failed install changes nothing but the verified download cache', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-failure-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const layout = join(work, 'pub');
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: `oci:${layout}`, name: 'machine/install:1', pki });
  // Corrupt the data image's layer in the source: hostfs copies fine, data fails mid-pull.
  const blobs = join(layout, 'blobs', 'sha256');
  const dataManifest = parseImageManifest(readFileSync(join(blobs, images.digests['data-1.0']!.slice(7))), 'data');
  const layer = join(blobs, dataManifest.layers[0]!.digest.slice(7));
  const good = readFileSync(layer);
  const dataBytes = good.length;
  const bad = Buffer.from(good);
  bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0xff;
  chmodSync(layer, 0o644);
  writeFileSync(layer, bad);

  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const before = treeHash(root);
  await t.rejects(install({ root, source: v1.reference }), { code: 'OCI_DIGEST_MISMATCH' });
  const after = treeHash(root);
  const store = 'atomfs-store/mos';
  const changed = [...after.keys()].filter((p) => after.get(p) !== before.get(p));
  const outsideCache = changed.filter((p) => !(p === 'atomfs-store' || p === store || p.startsWith(`${store}/`)));
  t.same(outsideCache, [], 'nothing outside the store changed (no config/, no lock file, no scratch dirs)');
  t.same([...before.keys()].filter((p) => !after.has(p)), [], 'nothing was removed');
  const index = JSON.parse(readFileSync(join(root, store, 'index.json'), 'utf8')) as { manifests: unknown[] };
  t.same(index.manifests, [], 'index.json names no image: the hostfs image pulled before the failure is not tagged');
  t.same(readdirSync(join(root, store, 'ingest')), [], 'no partial file');
  const cached = readdirSync(join(root, store, 'blobs', 'sha256'));
  t.ok(cached.length > 0, `${cached.length} blobs kept as the download cache`);
  for (const n of cached) t.equal(createHash('sha256').update(readFileSync(join(root, store, 'blobs', 'sha256', n))).digest('hex'), n, `cached blob ${n.slice(0, 12)} is verified content`);
  t.notOk(existsSync(join(root, 'config')), 'no config directory');

  // The source repaired: the next install reuses the cache and fetches only what it lacked.
  writeFileSync(layer, good);
  chmodSync(layer, 0o444);
  const r = await install({ root, source: v1.reference });
  t.equal(r.generation, 1);
  t.ok(r.blobBytes <= dataBytes + 4096, `the retry fetched ${r.blobBytes} bytes: the data image (${dataBytes}), not hostfs again`);
  const idx = JSON.parse(readFileSync(join(root, store, 'index.json'), 'utf8')) as { manifests: unknown[] };
  t.equal(idx.manifests.length, 2, `both images tagged once complete: ${JSON.stringify(idx)}`);
});

t.test('a refused create-boot-fs, mount or activate writes nothing under scratch-writes/ or mnt/', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-failure-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: `oci:${join(work, 'pub')}`, name: 'machine/install:1', pki });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference });
  // Flip one byte of every layer blob in the installed store: each layer now fails its check.
  const blobs = join(root, 'atomfs-store', 'mos', 'blobs', 'sha256');
  for (const tag of ['hostfs-1.0', 'data-1.0']) {
    for (const l of parseImageManifest(readFileSync(join(blobs, images.digests[tag]!.slice(7))), tag).layers) {
      const f = join(blobs, l.digest.slice(7));
      const b = readFileSync(f);
      b[b.length >> 1] = b[b.length >> 1]! ^ 0xff;
      chmodSync(f, 0o644);
      writeFileSync(f, b);
    }
  }
  const before = treeHash(root);
  const dest = join(root, 'sysroot-never');
  await t.rejects(createBootFs({ root, dest }), { code: /^(OCI_BLOB_CORRUPT|ATOMFS_VERITY_MISMATCH)$/ }, 'create-boot-fs refuses the hostfs layer');
  await t.rejects(mountTarget({ root, target: 'data' }), { code: /^(OCI_BLOB_CORRUPT|ATOMFS_VERITY_MISMATCH)$/ }, 'mount refuses the data layer');
  await t.rejects(activate({ root, target: 'data' }), { code: /^(OCI_BLOB_CORRUPT|ATOMFS_VERITY_MISMATCH)$/ }, 'activate refuses it too');
  const after = treeHash(root);
  t.same([...after.keys()].filter((p) => after.get(p) !== before.get(p)), [], 'no new or changed path: no atomfs/ dir, lock file, marker or mount point');
  t.same([...before.keys()].filter((p) => !after.has(p)), [], 'nothing removed');
  t.notOk(existsSync(dest), 'the boot mount point was not created');
});

t.test('an install from a hostile registry changes nothing but the verified download cache, whatever the fault', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-failure-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  type Fault = (req: IncomingMessage, res: ServerResponse) => void;
  let fault: { path: string; act: Fault } | undefined;
  const timers = new Set<NodeJS.Timeout>();
  t.teardown(() => timers.forEach((x) => clearInterval(x)));
  const fake = await startFakeRegistry(t, {
    hook: (req, res, url) => {
      if (!fault || url.pathname !== fault.path) return false;
      fault.act(req, res);
      return true;
    },
  });
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: fake.host, name: 'machine/install:1', pki });
  const dataDigest = images.digests['data-1.0']!;
  const dataManifest = fake.manifests.get(dataDigest)!;
  const layer = parseImageManifest(dataManifest.bytes, 'data').layers[0]!;
  const good = fake.blobs.get(layer.digest)!;
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0xff;
  const blobPath = `/v2/mos/blobs/${layer.digest}`;
  const manifestPath = `/v2/mos/manifests/${dataDigest}`;
  const drip = (res: ServerResponse, body: Buffer, everyMs: number) => {
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed || i >= body.length) return void clearInterval(timer);
      res.write(body.subarray(i, ++i));
    }, everyMs);
    timers.add(timer);
  };
  const cases: [what: string, path: string, act: Fault, code: RegExp][] = [
    ['a corrupt layer', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': flipped.length }), r.end(flipped)), /^OCI_DIGEST_MISMATCH$/],
    ['a truncated layer', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': good.length >> 1 }), r.end(good.subarray(0, good.length >> 1))), /^OCI_SIZE_MISMATCH$/],
    ['a layer too long', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': good.length + 10 }), r.end(Buffer.concat([good, Buffer.alloc(10)]))), /^OCI_SIZE_MISMATCH$/],
    ['a reset mid-stream, every time', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': good.length }), r.write(good.subarray(0, 1000), () => setTimeout(() => r.destroy(), 20))), /^REGISTRY_UNREACHABLE$/],
    ['a stalled layer', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': good.length }), r.write(good.subarray(0, 1000))), /^REGISTRY_TIMEOUT$/],
    ['a layer that drips', blobPath, (_q, r) => (r.writeHead(200, { 'content-length': good.length }), drip(r, good, 100)), /^REGISTRY_TIMEOUT$/],
    ['a redirect loop', blobPath, (q, r) => (r.writeHead(307, { location: q.url!.endsWith('a') ? q.url!.slice(0, -1) : `${q.url!}?a` }), r.end()), /^REGISTRY_PROTOCOL$/],
    ['an image manifest over the cap', manifestPath, (_q, r) => (r.writeHead(200, { 'content-type': dataManifest.mediaType, 'content-length': 10 * 1024 * 1024 }), r.write(Buffer.alloc(64 * 1024))), /^OCI_SIZE_EXCEEDS_LIMIT$/],
    ['an image manifest with a lying Content-Type', manifestPath, (_q, r) => (r.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': dataManifest.bytes.length }), r.end(dataManifest.bytes)), /^(REGISTRY_PROTOCOL|OCI_MANIFEST_INVALID)$/],
  ];
  const limits = { stallTimeoutMs: 400, requestTimeoutMs: 800, retries: 1, retryBaseMs: 5, minBytesPerSecond: 1000, rateWindowMs: 1000 };
  const store = 'atomfs-store/mos';
  for (const [what, path, act, code] of cases) {
    const root = makeSystemRoot(t);
    placeCa(root, pki);
    const before = treeHash(root);
    fault = { path, act };
    await t.rejects(install({ root, source: v1.reference, limits }), { code }, `${what}: refused`);
    fault = undefined;
    const after = treeHash(root);
    const changed = [...after.keys()].filter((p) => after.get(p) !== before.get(p));
    t.same(changed.filter((p) => !(p === 'atomfs-store' || p === store || p.startsWith(`${store}/`))), [], `${what}: nothing outside the store's download cache changed`);
    t.same([...before.keys()].filter((p) => !after.has(p)), [], `${what}: nothing removed`);
    if (existsSync(join(root, store))) {
      t.same((JSON.parse(readFileSync(join(root, store, 'index.json'), 'utf8')) as { manifests: unknown[] }).manifests, [], `${what}: no index.json entry`);
      t.same(readdirSync(join(root, store, 'ingest')), [], `${what}: no partial file`);
      for (const n of readdirSync(join(root, store, 'blobs', 'sha256'))) {
        t.equal(createHash('sha256').update(readFileSync(join(root, store, 'blobs', 'sha256', n))).digest('hex'), n, `${what}: cached blob ${n.slice(0, 12)} is verified`);
      }
      t.notOk(existsSync(join(root, store, 'blobs', 'sha256', layer.digest.slice(7))), `${what}: the bad layer is not stored`);
    }
    if (path === manifestPath) t.notOk(existsSync(join(root, 'atomfs-store')), `${what}: refused before the store was created`);
  }
  // The limits are flags of the CLI too: the stalled layer again, through mosctl.
  {
    const root = makeSystemRoot(t);
    placeCa(root, pki);
    const before = treeHash(root);
    fault = { path: blobPath, act: (_q, r) => (r.writeHead(200, { 'content-length': good.length }), r.write(good.subarray(0, 1000))) };
    const r = await runCli('mosctl', ['--root', root, 'install', '--stall-timeout', '0.4', '--registry-timeout', '2', '--retries', '0', v1.reference], { timeoutMs: 60_000 });
    fault = undefined;
    t.equal(r.code, 7, 'mosctl install --stall-timeout 0.4: exit 7 (registry)', { diag: r.stderr });
    t.match(r.stderr, /no data for 0\.4 s/, 'the error names the limit hit');
    const after = treeHash(root);
    t.same([...after.keys()].filter((p) => after.get(p) !== before.get(p) && !(p === 'atomfs-store' || p === store || p.startsWith(`${store}/`))), [], 'the CLI install changed nothing outside the cache either');
  }
  // The same registry, faults gone: an install works (the faults were the only thing wrong).
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  t.equal((await install({ root, source: v1.reference, limits })).generation, 1, 'a clean install from the same registry succeeds');

  // A failed update is the same: generation 1 stays as it was, the new layer is not stored.
  const v2 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images, '1.1'), T.data(images)] }), repo: fake.host, name: 'machine/install:2', pki });
  const layersOf = (tag: string) => parseImageManifest(fake.manifests.get(images.digests[tag]!)!.bytes, tag).layers;
  const old = new Set(layersOf('hostfs-1.0').map((l) => l.digest));
  const newLayer = layersOf('hostfs-1.1').find((l) => !old.has(l.digest))!;
  const newBytes = fake.blobs.get(newLayer.digest)!;
  const beforeUpdate = treeHash(root);
  fault = { path: `/v2/mos/blobs/${newLayer.digest}`, act: (_q, r) => (r.writeHead(200, { 'content-length': newBytes.length >> 1 }), r.end(newBytes.subarray(0, newBytes.length >> 1))) };
  await t.rejects(update({ root, source: v2.reference, limits }), { code: 'OCI_SIZE_MISMATCH' }, 'an update with a truncated layer fails');
  fault = undefined;
  const afterUpdate = treeHash(root);
  const blobsDir = `${store}/blobs/sha256/`;
  t.same([...afterUpdate.keys()].filter((p) => afterUpdate.get(p) !== beforeUpdate.get(p) && !p.startsWith(blobsDir)), [], 'the failed update changed nothing but cached blobs: config, index.json and scratch as before');
  t.same([...beforeUpdate.keys()].filter((p) => !afterUpdate.has(p)), [], 'nothing removed by the failed update');
  t.notOk(existsSync(join(root, blobsDir, newLayer.digest.slice(7))), 'the truncated layer is not stored');
  t.equal((await update({ root, source: v2.reference, limits })).generation, 2, 'the same update succeeds once the registry behaves');
});
