import { t, type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmdirSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  buildSquashfsLayer, verifyVerity, verityParamsFor, pseudoWhiteoutLines, parseSquashfsSuperblock, SQUASHFS_ZSTD_MEDIA_TYPE, VERITY_BLOCK_SIZE,
} from '../../src/squashfs/index.js';
import { isRoot, needs } from '../support/env.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('squashfs/layer');

const TOOLS = ['mksquashfs', 'unsquashfs', 'veritysetup'];

function makeTree(dir: string): void {
  mkdirSync(join(dir, 'etc/sub'), { recursive: true });
  writeFileSync(join(dir, 'etc/hostname'), 'layer-test\n');
  writeFileSync(join(dir, 'etc/sub/secret'), 'x'.repeat(10_000));
  chmodSync(join(dir, 'etc/sub/secret'), 0o640);
  writeFileSync(join(dir, 'big'), rnd.bytes(300_000)); // incompressible: several data blocks
  symlinkSync('etc/hostname', join(dir, 'link'));
  linkSync(join(dir, 'etc/hostname'), join(dir, 'hard'));
  if (isRoot) chownSync(join(dir, 'etc/sub/secret'), 1234, 5678);
  chmodSync(dir, 0o755);
}

// The mountpoint lives outside t.testdir (whose removal runs first and must never walk a mount).
function mountLoop(t: Test, file: string): { mnt: string; unmount: () => void } {
  const mnt = mkdtempSync(join(tmpdir(), 'mosb-layer-mnt-'));
  let mounted = false;
  const unmount = (): void => {
    if (mounted) execFileSync('umount', [mnt]);
    mounted = false;
  };
  t.teardown(() => {
    unmount();
    rmdirSync(mnt);
  });
  execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', file, mnt]);
  mounted = true;
  return { mnt, unmount };
}

t.test('verity params and pseudo lines are pure and deterministic', async (t) => {
  const a = verityParamsFor('ab'.repeat(32));
  t.same(a, verityParamsFor('ab'.repeat(32)));
  t.equal(a.salt, 'ab'.repeat(32));
  t.match(a.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.not(verityParamsFor('cd'.repeat(32)).uuid, a.uuid);
  t.equal(pseudoWhiteoutLines(['a b/c"d', 'x/y.z']), 'a\\ b/c\\"d c 0 0 0 0 0\nx/y.z c 0 0 0 0 0\n');
  for (const bad of ['', '/abs', 'a/../b', 'a//b', 'a\nb', '.'])
    t.throws(() => pseudoWhiteoutLines([bad]), { code: 'INPUT_INVALID' }, JSON.stringify(bad));
});

t.test('a built layer mounts, carries verity data that verifies, and a flipped byte fails', { skip: needs({ root: true, programs: TOOLS }) }, async (t) => {
  const dir = t.testdir({ rootfs: {} });
  makeTree(join(dir, 'rootfs'));
  const layer = await buildSquashfsLayer({ rootfs: join(dir, 'rootfs'), outFile: join(dir, 'l.sqfs') });
  t.equal(layer.mediaType, SQUASHFS_ZSTD_MEDIA_TYPE);
  t.equal(layer.size, statSync(layer.path).size);
  t.equal(layer.digest, `sha256:${execFileSync('sha256sum', [layer.path]).toString().slice(0, 64)}`);
  const sb = parseSquashfsSuperblock(readFileSync(layer.path).subarray(0, 96), layer.path);
  t.equal(sb.compressionId, 6, 'zstd');
  t.equal(layer.hashOffset, Math.ceil(sb.bytesUsed / VERITY_BLOCK_SIZE) * VERITY_BLOCK_SIZE);
  t.ok(layer.size > layer.hashOffset, 'hash area appended');

  const dump = execFileSync('veritysetup', ['dump', layer.path, `--hash-offset=${layer.hashOffset}`]).toString();
  t.match(dump, /Hash type:\s+1/);
  t.match(dump, new RegExp(`Data blocks:\\s+${layer.hashOffset / VERITY_BLOCK_SIZE}\\b`));
  t.match(dump, /Hash algorithm:\s+sha256/);
  const ok = spawnSync('veritysetup', ['verify', layer.path, layer.path, layer.rootHash, `--hash-offset=${layer.hashOffset}`]);
  t.equal(ok.status, 0, 'veritysetup verify accepts the root hash');

  const { mnt, unmount } = mountLoop(t, layer.path);
  t.equal(readFileSync(join(mnt, 'etc/hostname'), 'utf8'), 'layer-test\n');
  t.equal(readFileSync(join(mnt, 'big')).length, 300_000);
  t.equal(lstatSync(join(mnt, 'link')).isSymbolicLink(), true);
  t.equal(statSync(join(mnt, 'hard')).ino, statSync(join(mnt, 'etc/hostname')).ino, 'hardlink kept');
  const secret = statSync(join(mnt, 'etc/sub/secret'));
  t.same([secret.mode & 0o777, secret.uid, secret.gid], [0o640, 1234, 5678]);
  t.equal(statSync(join(mnt, 'big')).mtimeMs, 0, 'times fixed');
  unmount();

  // Flip one byte inside the squashfs data: verity must reject it.
  const at = Math.floor(sb.bytesUsed / 2);
  const fd = openSync(layer.path, 'r+');
  writeSync(fd, Buffer.from([readFileSync(layer.path)[at]! ^ 0xff]), 0, 1, at);
  closeSync(fd);
  const bad = spawnSync('veritysetup', ['verify', layer.path, layer.path, layer.rootHash, `--hash-offset=${layer.hashOffset}`]);
  t.not(bad.status, 0, 'veritysetup verify rejects a flipped byte');
  await t.rejects(verifyVerity(layer.path, { rootHash: layer.rootHash, hashOffset: layer.hashOffset }), { code: 'ATOMFS_VERITY_MISMATCH' });
});

t.test('same tree in two places with different times gives the same digest', { skip: needs({ programs: TOOLS }) }, async (t) => {
  const dir = t.testdir({ a: {} });
  makeTree(join(dir, 'a'));
  // A fresh copy written in another order, at other times: only the tree itself may matter.
  execFileSync('cp', ['-a', join(dir, 'a'), join(dir, 'b')]);
  utimesSync(join(dir, 'b/etc/hostname'), 12345, 12345);
  utimesSync(join(dir, 'b/etc'), 99, 99);
  writeFileSync(join(dir, 'b/big'), readFileSync(join(dir, 'a/big')));
  const a = await buildSquashfsLayer({ rootfs: join(dir, 'a'), outFile: join(dir, 'a.sqfs') });
  const b = await buildSquashfsLayer({ rootfs: join(dir, 'b'), outFile: join(dir, 'b.sqfs') });
  t.equal(b.digest, a.digest);
  t.equal(b.rootHash, a.rootHash);
  writeFileSync(join(dir, 'b/etc/hostname'), 'layer-tesT\n');
  const c = await buildSquashfsLayer({ rootfs: join(dir, 'b'), outFile: join(dir, 'c.sqfs') });
  t.not(c.digest, a.digest, 'one changed byte changes the digest');
  t.not(c.rootHash, a.rootHash);
});

t.test('whiteouts become char 0:0 devices without mknod; gzip when asked', { skip: needs({ programs: TOOLS }) }, async (t) => {
  const dir = t.testdir({ rootfs: { 'd i r': { keep: 'k' } } });
  const layer = await buildSquashfsLayer({
    rootfs: join(dir, 'rootfs'),
    outFile: join(dir, 'w.sqfs'),
    whiteouts: ['gone', 'd i r/q"z'],
    compression: 'gzip',
  });
  t.equal(layer.mediaType, 'application/vnd.stacker.image.layer.squashfs+gzip');
  const list = execFileSync('unsquashfs', ['-lls', '-d', '', layer.path]).toString();
  t.match(list, /c--------- root\/root\s+0,\s+0 .* \/gone\n/);
  t.match(list, /c--------- root\/root\s+0,\s+0 .* \/d i r\/q"z\n/);
});

t.test('bad input: one clear error, nothing written', { skip: needs({ programs: TOOLS }) }, async (t) => {
  const dir = t.testdir({ rootfs: { f: 'x' }, file: 'not a dir' });
  const out = join(dir, 'out.sqfs');
  await t.rejects(buildSquashfsLayer({ rootfs: join(dir, 'missing'), outFile: out }), { code: 'NOT_FOUND', subject: join(dir, 'missing') });
  await t.rejects(buildSquashfsLayer({ rootfs: join(dir, 'file'), outFile: out }), { code: 'INPUT_INVALID', subject: join(dir, 'file') });
  await t.rejects(buildSquashfsLayer({ rootfs: join(dir, 'rootfs'), outFile: join(dir, 'rootfs/x.sqfs') }), { code: 'INPUT_INVALID' });
  await t.rejects(buildSquashfsLayer({ rootfs: join(dir, 'rootfs'), outFile: join(dir, 'nodir/x.sqfs') }), { code: 'HOST_IO' });
  await t.rejects(buildSquashfsLayer({ rootfs: join(dir, 'rootfs'), outFile: out, whiteouts: ['../up'] }), { code: 'INPUT_INVALID' });
  t.same(readdirSync(dir).sort(), ['file', 'rootfs']);
  t.same(readdirSync(join(dir, 'rootfs')), ['f']);
  t.equal(existsSync(out), false);
});
