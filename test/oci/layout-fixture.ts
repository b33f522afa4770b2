import { sha256Digest } from '../../src/base/index.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST, type ContentTarget, type Descriptor } from '../../src/oci/index.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/layout-fixture');

// Builders for test images, written through the ContentTarget interface (so any store can receive them).

/** A descriptor and the exact bytes it describes. */
export interface Content {
  readonly desc: Descriptor;
  readonly bytes: Uint8Array;
}

/** Bytes described as `mediaType`. */
export function content(bytes: Uint8Array | string, mediaType: string): Content {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  return { desc: { mediaType, digest: sha256Digest(b), size: b.byteLength }, bytes: b };
}

/** A one-chunk async stream. */
export async function* stream(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** An image whose layers are `layers` (random bytes of the given sizes when numbers). */
export interface TestImage {
  readonly manifest: Content;
  readonly config: Content;
  readonly layers: readonly Content[];
}

/** Builds an image in memory: config naming `label`, layers as given. */
export function buildImage(opts: { label?: string; layers: readonly (number | Uint8Array)[] }): TestImage {
  const config = content(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { t: opts.label ?? 'x' } }, rootfs: { type: 'layers', diff_ids: [] } }), OCI_CONFIG);
  const layers = opts.layers.map((l) => content(typeof l === 'number' ? rnd.bytes(l) : l, OCI_LAYER_TAR));
  const manifest = content(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: config.desc, layers: layers.map((l) => l.desc) }),
    OCI_MANIFEST,
  );
  return { manifest, config, layers };
}

/** An index over `manifests` (platform amd64/linux on the first, arm64/linux on the second…). */
export function buildIndex(manifests: readonly Descriptor[], annotate?: (i: number) => Record<string, string>): Content {
  const archs = ['amd64', 'arm64', 's390x', 'ppc64le'];
  return content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: manifests.map((m, i) => ({ ...m, platform: { architecture: archs[i % archs.length], os: 'linux' }, ...(annotate ? { annotations: annotate(i) } : {}) })),
    }),
    OCI_INDEX,
  );
}

/** Pushes an image (children first) and optionally tags its manifest. */
export async function pushImage(dst: ContentTarget, img: TestImage, tag?: string): Promise<Descriptor> {
  await dst.pushBlob(img.config.desc, stream(img.config.bytes));
  for (const l of img.layers) await dst.pushBlob(l.desc, stream(l.bytes));
  await dst.pushManifest(img.manifest.desc, img.manifest.bytes, tag === undefined ? {} : { tag });
  return img.manifest.desc;
}
