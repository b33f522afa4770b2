// The cached Debian base image of the VM tests (test/support/vm-debian.ts): built once (minutes, needs
// root, mmdebstrap and the apt mirror), then served from the cache.
import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { hasProgram, needs } from '../support/env.js';
import { debianBaseImage } from '../support/vm-debian.js';

const skip = needs({ root: true, programs: ['mmdebstrap', 'mksquashfs', 'veritysetup'] });
if (skip) t.comment(`skipping the Debian base image build: ${skip}`);

interface Index {
  manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[];
}

t.test('debian base image: built into an OCI layout, then reused from the cache', { skip, timeout: 1_200_000 }, async (t) => {
  const first = await debianBaseImage({ log: (l) => t.comment(l) });
  t.equal(first.tag, 'base');
  t.match(first.key, /^[0-9a-f]{16}$/);
  t.equal(first.layout, join(process.env.MOSCTL_TEST_CACHE ?? '/var/cache/mosctl-test', 'debian-base', first.key, 'oci'));

  const index = JSON.parse(await readFile(join(first.layout, 'index.json'), 'utf8')) as Index;
  const tagged = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'base');
  t.equal(tagged.length, 1, 'index.json tags one manifest base');
  t.equal(tagged[0]?.digest, first.descriptor.digest);

  const manifest = JSON.parse(await readFile(blob(first.layout, first.descriptor.digest), 'utf8')) as { layers: { digest: string; size: number; mediaType: string }[] };
  t.equal(manifest.layers.length, 1, 'one squashfs layer');
  const layer = manifest.layers[0]!;
  t.match(layer.mediaType, /squashfs/);
  t.equal((await stat(blob(first.layout, layer.digest))).size, layer.size, 'the layer blob is present, of the size the manifest says');

  const build = JSON.parse(await readFile(join(first.layout, '..', 'build.json'), 'utf8')) as Record<string, unknown>;
  t.comment(`cache entry: ${JSON.stringify(build)}`);
  t.notOk(await exists(join(first.layout, '..', 'rootfs')), 'the rootfs tree is not kept');

  if (await hasProgram('skopeo')) {
    const r = await exec(['skopeo', 'inspect', '--raw', `oci:${first.layout}:base`]);
    t.equal((JSON.parse(r.stdout) as { layers: unknown[] }).layers.length, 1, 'skopeo reads the layout');
  }

  const second = await debianBaseImage();
  t.equal(second.key, first.key, 'same inputs, same key');
  t.equal(second.layout, first.layout);
  t.equal(second.descriptor.digest, first.descriptor.digest, 'the second call returns the cached image');
});

function blob(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return join(layout, 'blobs', alg!, hex!);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
