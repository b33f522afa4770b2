import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { openLayout } from '../../src/oci/index.js';
import { convertImage } from '../../src/build/index.js';
import { SQUASHFS_ZSTD_MEDIA_TYPE, VERITY_ROOT_HASH_ANNOTATION } from '../../src/squashfs/index.js';
import { needs } from '../support/env.js';
import { blobFile, blobNames, inspectLayout, listTree, mountStack } from './support.js';

const NEEDS = needs({ root: true, programs: ['mksquashfs', 'veritysetup', 'umoci', 'skopeo', 'setfattr', 'zstd'] });
const umoci = (...args: string[]): void => void execFileSync('umoci', args, { stdio: 'ignore' });

// A three-layer tar image as umoci writes it: files, then deletions, then a hand-made layer with an
// opaque directory (umoci itself never writes `.wh..wh..opq`).
function makeTarImage(dir: string): string {
  const img = join(dir, 'tarimg');
  umoci('init', '--layout', img);
  umoci('new', '--image', `${img}:v1`);
  umoci('unpack', '--image', `${img}:v1`, join(dir, 'b1'));
  const r1 = join(dir, 'b1/rootfs');
  mkdirSync(join(r1, 'etc'));
  mkdirSync(join(r1, 'opq/sub'), { recursive: true });
  mkdirSync(join(r1, 'gone-dir/deep'), { recursive: true });
  mkdirSync(join(r1, 'home/user'), { recursive: true });
  writeFileSync(join(r1, 'etc/hostname'), 'one\n');
  writeFileSync(join(r1, 'etc/delete-me'), 'bye\n');
  writeFileSync(join(r1, 'tool'), '#!/bin/sh\necho hi\n');
  chmodSync(join(r1, 'tool'), 0o4755);
  linkSync(join(r1, 'tool'), join(r1, 'tool-hardlink'));
  symlinkSync('/etc/hostname', join(r1, 'abs-link'));
  writeFileSync(join(r1, 'home/user/.profile'), 'export X=1\n');
  chownSync(join(r1, 'home/user'), 1000, 1000);
  chownSync(join(r1, 'home/user/.profile'), 1000, 1001);
  writeFileSync(join(r1, 'opq/a'), 'a\n');
  writeFileSync(join(r1, 'opq/sub/b'), 'b\n');
  writeFileSync(join(r1, 'gone-dir/deep/x'), 'x\n');
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(r1, 'etc/hostname')]);
  umoci('repack', '--image', `${img}:v1`, join(dir, 'b1'));

  umoci('unpack', '--image', `${img}:v1`, join(dir, 'b2'));
  const r2 = join(dir, 'b2/rootfs');
  rmSync(join(r2, 'etc/delete-me'));
  rmSync(join(r2, 'gone-dir'), { recursive: true });
  writeFileSync(join(r2, 'etc/hostname'), 'two\n');
  umoci('repack', '--image', `${img}:v2`, join(dir, 'b2'));
  umoci('config', '--image', `${img}:v2`, '--config.entrypoint', '/tool', '--config.env', 'FOO=bar', '--config.workingdir', '/home/user');

  const l3 = join(dir, 'l3');
  mkdirSync(join(l3, 'opq'), { recursive: true });
  writeFileSync(join(l3, 'opq/.wh..wh..opq'), '');
  writeFileSync(join(l3, 'opq/c'), 'c\n');
  execFileSync('tar', ['-cf', join(dir, 'l3.tar'), '-C', l3, '--owner=0', '--group=0', 'opq']);
  umoci('raw', 'add-layer', '--image', `${img}:v2`, '--tag', 'v3', join(dir, 'l3.tar'));
  umoci('unpack', '--image', `${img}:v3`, join(dir, 'reference'));
  return img;
}

t.test('--from: a umoci tar image converts layer by layer; stacked it shows what umoci unpacks', { skip: NEEDS }, async (t) => {
  const dir = t.testdir({});
  const img = makeTarImage(dir);
  const reference = join(dir, 'reference/rootfs');
  t.equal(existsSync(join(reference, 'etc/delete-me')), false, 'umoci agrees the file is deleted');

  const dstDir = join(dir, 'squash');
  const dst = await openLayout(dstDir, { create: true });
  const res = await convertImage({ from: { src: await openLayout(img), reference: 'v3' }, dst, tag: 'conv' });
  t.equal(res.layers.length, 3);
  const { manifest, config } = inspectLayout(dstDir, 'conv');
  t.same(manifest.layers.map((l: { mediaType: string }) => l.mediaType), Array(3).fill(SQUASHFS_ZSTD_MEDIA_TYPE));
  t.same(manifest.layers.map((l: { annotations: Record<string, string> }) => l.annotations[VERITY_ROOT_HASH_ANNOTATION]), res.layers.map((l) => l.rootHash));
  t.same(config.rootfs.diff_ids, res.layers.map((l) => l.digest));
  t.same(config.config.Entrypoint, ['/tool']);
  t.ok(config.config.Env.includes('FOO=bar'));
  t.equal(config.config.WorkingDir, '/home/user');
  for (const l of res.layers) {
    const f = blobFile(dstDir, l.digest);
    execFileSync('veritysetup', ['verify', f, f, l.rootHash, `--hash-offset=${l.hashOffset}`]);
  }
  t.pass('every converted layer verifies');

  const files = res.layers.map((l) => blobFile(dstDir, l.digest));
  const merged = mountStack(t, files, { userxattr: true });
  t.same(listTree(merged), listTree(reference), 'stacked squashfs layers equal umoci unpack');
  t.equal(existsSync(join(merged, 'etc/delete-me')), false, 'deleted file stays deleted');
  t.equal(existsSync(join(merged, 'gone-dir')), false, 'deleted dir stays deleted');
  t.equal(existsSync(join(merged, 'opq/a')), false, 'opaque dir hides lower content');
  t.equal(readFileSync(join(merged, 'opq/c'), 'utf8'), 'c\n');
  t.equal(readFileSync(join(merged, 'etc/hostname'), 'utf8'), 'two\n');
  t.match(execFileSync('getfattr', ['--absolute-names', '-n', 'user.note', join(merged, 'etc/hostname')]).toString(), /user.note="kept"/);
  const merged2 = mountStack(t, files, { userxattr: false });
  t.same(listTree(merged2), listTree(reference), 'same without userxattr (trusted.overlay.opaque)');

  // The same image recompressed with zstd converts to the very same squashfs layers.
  execFileSync('skopeo', ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${img}:v3`, `oci:${join(dir, 'zimg')}:v3`]);
  const zmanifest = inspectLayout(join(dir, 'zimg'), 'v3').manifest;
  t.equal(zmanifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const z = await convertImage({ from: { src: await openLayout(join(dir, 'zimg')), reference: 'v3' }, dst, tag: 'conv-z' });
  t.same(z.layers.map((l) => l.digest), res.layers.map((l) => l.digest), 'gzip and zstd sources give identical layers');
});

t.test('--from: a squashfs image or a missing tag is refused before anything is written', { skip: NEEDS }, async (t) => {
  const dir = t.testdir({ rootfs: { f: 'x' } });
  const dst = await openLayout(join(dir, 'dst'), { create: true });
  const { buildImage } = await import('../../src/build/index.js');
  await buildImage({ rootfs: join(dir, 'rootfs'), dst, tag: 'sq' });
  const before = blobNames(join(dir, 'dst'));
  await t.rejects(convertImage({ from: { src: dst, reference: 'sq' }, dst, tag: 'again' }), { code: 'OCI_MEDIA_TYPE_UNSUPPORTED', hint: /already in squashfs form/ });
  await t.rejects(convertImage({ from: { src: dst, reference: 'missing' }, dst, tag: 'again' }), { code: /TAG_UNKNOWN|NOT_FOUND/ });
  await t.rejects(convertImage({ from: { src: dst, reference: 'sq' }, dst, tag: 'bad tag' }), { code: 'INPUT_INVALID' });
  t.same(blobNames(join(dir, 'dst')), before);

  // umoci 0.4.7 `insert` writes a tar without its end blocks: a truncated archive, refused by name.
  umoci('init', '--layout', join(dir, 'broken'));
  umoci('new', '--image', `${join(dir, 'broken')}:v1`);
  umoci('insert', '--image', `${join(dir, 'broken')}:v1`, join(dir, 'rootfs/f'), '/f');
  await t.rejects(convertImage({ from: { src: await openLayout(join(dir, 'broken')), reference: 'v1' }, dst, tag: 'broken' }), {
    code: 'IMAGE_INVALID',
    subject: /^v1: layers\[0\] \(sha256:/,
    message: /cannot extract the tar layer: .*Unexpected EOF/,
  });
  t.same(blobNames(join(dir, 'dst')), before);
});
