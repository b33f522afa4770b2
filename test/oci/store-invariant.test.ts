import { t } from 'tap';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../../src/base/index.js';
import { OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, copy, openLayout, type ContentSource, type Descriptor } from '../../src/oci/index.js';

// The store verifies every byte it stores (oras-go Storage.Push): a source that skips its own checks,
// or lies outright, can never get bytes stored under a digest name they do not hash to.

const enc = (s: string) => new TextEncoder().encode(s);

/** A source that serves `served` for every blob, whatever digest is asked, and verifies nothing. */
function lyingSource(manifest: Uint8Array, desc: Descriptor, served: (d: Descriptor) => Uint8Array): ContentSource {
  return {
    resolve: async () => desc,
    fetchBytes: async (d) => (d.digest === desc.digest ? manifest : served(d)),
    fetchBlob: (d) =>
      (async function* () {
        yield served(d);
      })(),
    exists: async () => true,
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  return out.sort();
}

const cases: { name: string; served: (d: Descriptor, layer: Uint8Array) => Uint8Array }[] = [
  { name: 'other bytes of the same size', served: (d, layer) => (d.mediaType === OCI_LAYER_TAR ? layer.map((b) => b ^ 1) : enc('{}')) },
  { name: 'one byte short', served: (d, layer) => (d.mediaType === OCI_LAYER_TAR ? layer.subarray(1) : enc('{}')) },
  { name: 'one byte too many', served: (d, layer) => (d.mediaType === OCI_LAYER_TAR ? new Uint8Array([...layer, 0]) : enc('{}')) },
];

for (const c of cases) {
  t.test(`a lying ContentSource (${c.name}) gets nothing stored`, async (t) => {
    const layer = enc('layer bytes '.repeat(100));
    const config = enc('{}');
    const layerDesc: Descriptor = { mediaType: OCI_LAYER_TAR, digest: sha256Digest(layer), size: layer.byteLength };
    const configDesc: Descriptor = { mediaType: OCI_CONFIG, digest: sha256Digest(config), size: config.byteLength };
    const manifest = enc(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: [layerDesc] }));
    const desc: Descriptor = { mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.byteLength };
    const dir = join(t.testdir({}), 'store');
    const dst = await openLayout(dir, { create: true });
    const before = await filesUnder(dir);
    const src = lyingSource(manifest, desc, (d) => (d.digest === configDesc.digest ? config : c.served(d, layer)));
    await t.rejects(copy({ src, dst, reference: desc, tag: 'x' }), { code: /^OCI_(DIGEST|SIZE)_MISMATCH$/ });
    const after = await filesUnder(dir);
    t.notOk(after.includes(`blobs/sha256/${layerDesc.digest.slice(7)}`), 'no blob under the layer digest');
    t.notOk(after.includes(`blobs/sha256/${desc.digest.slice(7)}`), 'no manifest stored');
    t.same(after.filter((f) => f.startsWith('ingest/')), [], 'no temp file left in ingest/');
    t.same(after.filter((f) => !before.includes(f) && f !== `blobs/sha256/${configDesc.digest.slice(7)}`), [], 'nothing else new');
    await t.rejects(dst.resolve('x'), { code: 'OCI_TAG_UNKNOWN' }, 'the tag was not written');
  });
}
