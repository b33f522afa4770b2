import { t } from 'tap';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { activate, createBootFs, install, mountTarget } from '../../src/machine/index.js';
import { parseImageManifest } from '../../src/oci/index.js';

// Hostile input, finding 1: a failed install leaves the root as it found it, except verified blobs in
// the store's download cache (blobs/ of an otherwise empty layout) that the next run reuses. Checked with
// a hash of the whole tree before and after.
const skip = needs({ root: true, programs: ['mksquashfs'] });

/** Every path below `dir` with its type, and for files their sha256. */
function treeHash(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      const rel = relative(dir, p);
      if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else if (st.isFile()) out.set(rel, `file ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      else out.set(rel, st.isSymbolicLink() ? 'symlink' : 'other');
    }
  };
  walk(dir);
  return out;
}

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
