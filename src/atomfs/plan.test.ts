import { t } from 'tap';
import { planMount, describePlan, type LayerInput } from './index.js';
import { LEGACY_SQUASHFS_MEDIA_TYPE, SQUASHFS_MEDIA_TYPE, SQUASHFS_ZSTD_MEDIA_TYPE, VERITY_ROOT_HASH_ANNOTATION } from '../squashfs/index.js';
import type { Digest } from '../base/index.js';

const hex = (c: string) => c.repeat(64);
const layer = (c: string, mediaType = SQUASHFS_ZSTD_MEDIA_TYPE, annotations?: Record<string, string>): LayerInput => ({
  path: `/store/blobs/sha256/${hex(c)}`,
  digest: `sha256:${hex(c)}` as Digest,
  mediaType,
  ...(annotations ? { annotations } : {}),
});
const base = { target: 'app', dest: '/mnt/app', scratchDir: '/s', writable: false };
const overlayOf = (p: ReturnType<typeof planMount>) => p.steps.find((s) => s.kind === 'overlay')!;

t.test('read-only: verify all, then layers, then overlay top first with atomfs options', async (t) => {
  const p = planMount({ ...base, layers: [layer('a'), layer('b', SQUASHFS_MEDIA_TYPE), layer('c', LEGACY_SQUASHFS_MEDIA_TYPE)] });
  t.same(p.steps.map((s) => s.kind), ['verify', 'verify', 'verify', 'mkdir', 'mkdir', 'mount-layer', 'mkdir', 'mount-layer', 'mkdir', 'mount-layer', 'mkdir', 'overlay']);
  t.equal(overlayOf(p).kind === 'overlay' && overlayOf(p).options, `lowerdir=/s/atomfs/mounts/${hex('c')}:/s/atomfs/mounts/${hex('b')}:/s/atomfs/mounts/${hex('a')},index=off,xino=on,userxattr`);
  t.equal(describePlan(p).length, p.steps.length);
});

t.test('single layer gets the empty workaround lower; writable gets upper and work', async (t) => {
  const ro = overlayOf(planMount({ ...base, layers: [layer('a')] }));
  t.match(ro, { lowerDirs: [`/s/atomfs/mounts/${hex('a')}`, '/s/atomfs/mounts/workaround'] });
  const p = planMount({ ...base, writable: true, layers: [layer('a')] });
  t.same(overlayOf(p), {
    kind: 'overlay',
    dest: '/mnt/app',
    lowerDirs: [`/s/atomfs/mounts/${hex('a')}`],
    upperDir: '/s/app/upper',
    workDir: '/s/app/work',
    options: `lowerdir=/s/atomfs/mounts/${hex('a')},upperdir=/s/app/upper,workdir=/s/app/work,index=off,xino=on,userxattr`,
  });
  t.ok(p.steps.some((s) => s.kind === 'mkdir' && s.path === '/s/app/upper' && s.fresh), 'upper starts empty');
});

t.test('a layer listed twice is mounted once, at its topmost place', async (t) => {
  const p = planMount({ ...base, layers: [layer('a'), layer('b'), layer('a')] });
  t.same(p.layers.map((l) => l.digest[7]), ['b', 'a']);
});

t.test('verity annotation is read, new name first', async (t) => {
  const p = planMount({ ...base, requireVerity: true, layers: [layer('a', SQUASHFS_ZSTD_MEDIA_TYPE, { [VERITY_ROOT_HASH_ANNOTATION]: hex('f') })] });
  t.equal(p.layers[0]?.rootHash, hex('f'));
});

const bad: { name: string; opts: Parameters<typeof planMount>[0]; code: string; subject?: string }[] = [
  { name: 'tar layer', opts: { ...base, layers: [layer('a'), layer('b', 'application/vnd.oci.image.layer.v1.tar+gzip')] }, code: 'ATOMFS_LAYER_UNSUPPORTED', subject: `layer sha256:${hex('b')}` },
  { name: 'erofs layer', opts: { ...base, layers: [layer('a', 'application/vnd.stacker.image.layer.erofs+zstd')] }, code: 'ATOMFS_LAYER_UNSUPPORTED' },
  { name: 'no layers', opts: { ...base, layers: [] }, code: 'IMAGE_INVALID' },
  { name: 'missing root hash with requireVerity', opts: { ...base, requireVerity: true, layers: [layer('a')] }, code: 'ATOMFS_VERITY_MISSING', subject: `layer sha256:${hex('a')}` },
  { name: 'uppercase root hash', opts: { ...base, layers: [layer('a', SQUASHFS_MEDIA_TYPE, { [VERITY_ROOT_HASH_ANNOTATION]: hex('F') })] }, code: 'IMAGE_INVALID' },
  { name: 'bad digest', opts: { ...base, layers: [{ ...layer('a'), digest: 'sha256:xyz' as Digest }] }, code: 'OCI_REFERENCE_INVALID', subject: 'layers[0].digest' },
  { name: 'relative blob', opts: { ...base, layers: [{ ...layer('a'), path: 'blob' }] }, code: 'INPUT_INVALID' },
  { name: 'target with slash', opts: { ...base, target: '../x', layers: [layer('a')] }, code: 'INPUT_INVALID' },
  { name: 'relative dest', opts: { ...base, dest: 'mnt', layers: [layer('a')] }, code: 'INPUT_INVALID' },
  { name: 'scratch with a colon', opts: { ...base, scratchDir: '/a:b', layers: [layer('a')] }, code: 'INPUT_INVALID' },
  {
    name: 'options past 4096 bytes',
    opts: { ...base, layers: Array.from({ length: 60 }, (_, i) => ({ ...layer('a'), digest: `sha256:${i.toString(16).padStart(64, '0')}` as Digest })) },
    code: 'ATOMFS_OPTIONS_TOO_LONG',
  },
];
for (const c of bad) {
  t.test(`refused before any mount: ${c.name}`, async (t) => {
    t.throws(() => planMount(c.opts), { code: c.code, ...(c.subject ? { subject: c.subject } : {}) });
  });
}
