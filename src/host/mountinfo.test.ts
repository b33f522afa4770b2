import { t } from 'tap';
import { mountAt, mountOption, overlayLowerDirs, parseMountInfo } from './index.js';

const text = [
  '27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '44 27 7:3 / /s/atomfs/mounts/aa ro,relatime shared:20 - squashfs /dev/loop3 ro,errors=continue',
  '45 27 0:39 / /mnt/with\\040space rw,relatime - overlay overlay ro,lowerdir=/s/m/b:/s/m/a\\:colon,redirect_dir=nofollow,userxattr',
  '46 27 0:40 / /mnt/x rw - overlay overlay rw,lowerdir=/l1,upperdir=/s/x/upper,workdir=/s/x/work,userxattr',
  '47 27 0:41 / /mnt/x rw - tmpfs tmpfs rw',
  'garbage line',
  '',
].join('\n');

t.test('parses fields, unescapes paths, skips garbage', async (t) => {
  const mi = parseMountInfo(text);
  t.equal(mi.length, 5);
  t.match(mi[1], { id: 44, device: '7:3', mountPoint: '/s/atomfs/mounts/aa', fsType: 'squashfs', source: '/dev/loop3' });
  t.equal(mi[2]?.mountPoint, '/mnt/with space');
  t.same(overlayLowerDirs(mi[2]!), ['/s/m/b', '/s/m/a:colon']);
  t.same(overlayLowerDirs(mi[1]!), [], 'not an overlay');
  t.equal(mountOption(mi[3]!.superOptions, 'upperdir'), '/s/x/upper');
  t.equal(mountOption(mi[3]!.superOptions, 'index'), undefined);
  t.equal(mountAt(mi, '/mnt/x')?.fsType, 'tmpfs', 'the topmost of stacked mounts');
  t.equal(mountAt(mi, '/nope'), undefined);
});
