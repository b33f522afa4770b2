import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, symlinkSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { openLayout } from '../../src/oci/index.js';
import { buildImage } from '../../src/build/index.js';
import { VERITY_ROOT_HASH_ANNOTATION } from '../../src/squashfs/index.js';
import { needs } from '../support/env.js';
import { blobFile, blobNames, inspectLayout, listTree, mountStack } from './support.js';

const NEEDS = needs({ root: true, programs: ['mksquashfs', 'unsquashfs', 'veritysetup', 'skopeo', 'getfattr', 'setfattr'] });

function baseTree(dir: string): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'opq/sub'), { recursive: true });
  mkdirSync(join(dir, 'gone-dir/deep'), { recursive: true });
  writeFileSync(join(dir, 'etc/keep'), 'same\n');
  writeFileSync(join(dir, 'etc/change'), 'old\n');
  writeFileSync(join(dir, 'etc/delete-me'), 'bye\n');
  writeFileSync(join(dir, 'etc/chmod-me'), 'mode\n');
  writeFileSync(join(dir, 'opq/a'), 'a\n');
  writeFileSync(join(dir, 'opq/sub/b'), 'b\n');
  writeFileSync(join(dir, 'gone-dir/deep/x'), 'x\n');
  symlinkSync('keep', join(dir, 'etc/link'));
  chmodSync(dir, 0o755);
}

t.test('--base: the new layer holds only the delta, whiteouts and an opaque dir; stacked it equals the new tree', { skip: NEEDS }, async (t) => {
  const dir = t.testdir({ base: {}, layout: {} });
  const layoutDir = join(dir, 'layout');
  baseTree(join(dir, 'base'));
  const store = await openLayout(layoutDir, { create: true });
  const base = await buildImage({ rootfs: join(dir, 'base'), dst: store, tag: 'base', config: { env: ['A=1', 'B=2'], entrypoint: ['/bin/sh'] } });

  // The new tree: a copy of the base with changes.
  const next = join(dir, 'next');
  execFileSync('cp', ['-a', join(dir, 'base'), next]);
  writeFileSync(join(next, 'etc/change'), 'new content\n');
  rmSync(join(next, 'etc/delete-me'));
  chmodSync(join(next, 'etc/chmod-me'), 0o600);
  chownSync(join(next, 'etc/keep'), 1000, 1000);
  writeFileSync(join(next, 'etc/added'), 'added\n');
  rmSync(join(next, 'opq'), { recursive: true });
  mkdirSync(join(next, 'opq'));
  writeFileSync(join(next, 'opq/c'), 'c\n');
  rmSync(join(next, 'gone-dir'), { recursive: true });

  const blobsBefore = blobNames(layoutDir);
  const built = await buildImage({ rootfs: next, dst: store, tag: 'next', base: { src: store, reference: 'base' }, config: { env: ['B=3'] } });
  t.equal(built.layers.length, 2);
  t.equal(built.layers[0]!.digest, base.layers[0]!.digest, 'base layer reused as is');
  t.same(built.layers[0], base.layers[0], 'with its root hash and hash offset');
  t.equal(blobNames(layoutDir).length, blobsBefore.length + 3, 'one layer, one config, one manifest more');

  const { manifest, config } = inspectLayout(layoutDir, 'next');
  t.equal(manifest.layers.length, 2);
  t.equal(manifest.layers[1].annotations[VERITY_ROOT_HASH_ANNOTATION], built.layers[1]!.rootHash);
  t.same(config.rootfs.diff_ids, built.layers.map((l) => l.digest));
  t.same(config.config.Env, ['A=1', 'B=3'], 'env merged over the base');
  t.same(config.config.Entrypoint, ['/bin/sh'], 'base entrypoint kept');
  t.equal(config.history.length, 2);

  // What the delta layer holds, read by unsquashfs.
  const top = blobFile(layoutDir, built.layers[1]!.digest);
  const list = execFileSync('unsquashfs', ['-lls', '-d', '', top]).toString();
  t.match(list, /\/etc\/change\n/);
  t.match(list, /\/etc\/added\n/);
  t.match(list, /\/etc\/chmod-me\n/);
  t.match(list, /\/etc\/keep\n/, 'owner-only change included');
  t.notMatch(list, /\/etc\/link\n/, 'unchanged symlink left out');
  t.match(list, /c--------- root\/root\s+0,\s+0 .* \/etc\/delete-me\n/, 'deleted file is a whiteout');
  t.match(list, /c--------- root\/root\s+0,\s+0 .* \/gone-dir\n/, 'deleted dir is one whiteout');
  t.notMatch(list, /gone-dir\/deep/);
  t.match(list, /\/opq\/c\n/);
  t.notMatch(list, /\/opq\/a\n/);

  for (const userxattr of [false, true]) {
    const merged = mountStack(t, built.layers.map((l) => blobFile(layoutDir, l.digest)), { userxattr });
    t.same(listTree(merged), listTree(next), `stacked layers equal the new tree (userxattr ${userxattr})`);
    t.equal(existsSync(join(merged, 'etc/delete-me')), false);
    t.equal(existsSync(join(merged, 'opq/a')), false, 'opaque dir hides the base content');
    t.equal(readFileSync(join(merged, 'etc/change'), 'utf8'), 'new content\n');
  }
  // Overlay hides trusted.overlay.* xattrs: read them from the layer itself.
  execFileSync('unsquashfs', ['-q', '-no-progress', '-d', join(dir, 'top'), top]);
  const opq = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', join(dir, 'top/opq')]).toString();
  t.match(opq, /trusted\.overlay\.opaque="y"/);
  t.match(opq, /user\.overlay\.opaque="y"/);

  // Stacking again on the result (a base of two layers, merged through the whiteouts) gives a small delta.
  writeFileSync(join(next, 'etc/third'), '3\n');
  const third = await buildImage({ rootfs: next, dst: store, tag: 'third', base: { src: store, reference: 'next' } });
  const list3 = execFileSync('unsquashfs', ['-lls', '-d', '', blobFile(layoutDir, third.layers[2]!.digest)]).toString();
  t.same(list3.trim().split('\n').slice(-3).map((l) => l.replace(/.* /, '')), ['', '/etc', '/etc/third'], 'only the new file (and its dirs)');
  const merged3 = mountStack(t, third.layers.map((l) => blobFile(layoutDir, l.digest)), { userxattr: true });
  t.same(listTree(merged3), listTree(next));
});

t.test('--base: bad bases are refused before anything is written', { skip: NEEDS }, async (t) => {
  const dir = t.testdir({ rootfs: { f: 'x' }, layout: {} });
  const layoutDir = join(dir, 'layout');
  const store = await openLayout(layoutDir, { create: true });
  // A tar-layer image (umoci writes one) is no squashfs base.
  execFileSync('umoci', ['init', '--layout', join(dir, 'tarimg')]);
  execFileSync('umoci', ['new', '--image', `${join(dir, 'tarimg')}:t`]);
  execFileSync('umoci', ['raw', 'add-layer', '--image', `${join(dir, 'tarimg')}:t`, await emptyTar(dir)]);
  const tarStore = await openLayout(join(dir, 'tarimg'));
  const before = blobNames(layoutDir);
  await t.rejects(buildImage({ rootfs: join(dir, 'rootfs'), dst: store, tag: 'x', base: { src: tarStore, reference: 't' } }), {
    code: 'IMAGE_INVALID',
    message: /not a squashfs image/,
  });
  await t.rejects(buildImage({ rootfs: join(dir, 'rootfs'), dst: store, tag: 'x', base: { src: store, reference: 'nope' } }), { code: /TAG_UNKNOWN|NOT_FOUND/ });
  t.same(blobNames(layoutDir), before, 'no blob written');
});

async function emptyTar(dir: string): Promise<string> {
  const tar = join(dir, 'empty.tar');
  mkdirSync(join(dir, 'emptytree'));
  execFileSync('tar', ['-cf', tar, '-C', join(dir, 'emptytree'), '.']);
  return tar;
}
