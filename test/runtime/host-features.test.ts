import { t } from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { idmappedMountSupported } from '../../src/runtime/index.js';

// stat(1) -f is the independent reading of the filesystem type.
const statType = (dir: string) => spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
const idmappable = new Set(['ext2/ext3', 'xfs', 'btrfs', 'f2fs', 'msdos', 'vfat', 'tmpfs']);

t.test('idmappedMountSupported decides by the statfs type, as stat -f names it', async (t) => {
  for (const dir of ['/dev/shm', '/proc', '/sys', t.testdir()]) {
    t.equal(await idmappedMountSupported(dir), idmappable.has(statType(dir)), `${dir} (${statType(dir)})`);
  }
});

t.test('a path that cannot be examined is HOST_IO naming it', async (t) => {
  const dir = join(t.testdir(), 'absent');
  await t.rejects(idmappedMountSupported(dir), { code: 'HOST_IO', subject: dir, message: /no such file/ });
});
