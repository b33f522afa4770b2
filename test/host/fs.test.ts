import { t } from 'tap';
import { symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MosError } from '../../src/base/index.js';
import { exists, fileError, lstatOrAbsent, readFileLimited, statOrAbsent } from '../../src/host/index.js';

const errno = (code: string) => Object.assign(new Error(`${code}: synthetic`), { code });

t.test('fileError keeps missing, refused and broken apart', async (t) => {
  const cases = [
    { code: 'ENOENT', want: 'NOT_FOUND', message: 'cannot read: no such file or directory' },
    { code: 'ENOTDIR', want: 'NOT_FOUND', message: 'cannot read: not a directory' },
    { code: 'EACCES', want: 'HOST_PERMISSION', message: 'cannot read: permission denied' },
    { code: 'EPERM', want: 'HOST_PERMISSION', message: 'cannot read: operation not permitted' },
    { code: 'EIO', want: 'HOST_IO', message: 'cannot read: EIO' },
    { code: 'EISDIR', want: 'HOST_IO', message: 'cannot read: is a directory' },
  ];
  for (const c of cases) {
    const cause = errno(c.code);
    t.match(fileError(cause, '/x/ca.pem', 'cannot read'), { code: c.want, subject: '/x/ca.pem', message: c.message, cause }, c.code);
  }
  t.equal(fileError(errno('ENOENT'), '/x', 'cannot write', 'HOST_IO').code, 'HOST_IO', 'a write keeps ENOENT as HOST_IO');
  t.equal(fileError(errno('EACCES'), '/x', 'cannot write', 'HOST_IO').code, 'HOST_PERMISSION');
  const already = new MosError({ code: 'INPUT_INVALID', message: 'x' });
  t.equal(fileError(already, '/x', 'cannot read'), already, 'a MosError passes through');
});

t.test('readFileLimited and exists on real paths', async (t) => {
  const dir = t.testdir({ 'ca.pem': 'abc', file: 'x', sub: {} });
  t.equal((await readFileLimited(join(dir, 'ca.pem'), 3)).toString(), 'abc', 'exactly the cap');
  await t.rejects(readFileLimited(join(dir, 'ca.pem'), 2), { code: 'INPUT_INVALID', subject: join(dir, 'ca.pem') });
  await t.rejects(readFileLimited(join(dir, 'absent'), 10), { code: 'NOT_FOUND', subject: join(dir, 'absent') });
  await t.rejects(readFileLimited(join(dir, 'file', 'ca.pem'), 10), { code: 'NOT_FOUND', message: /not a directory/ }, 'a parent that is a file: ENOTDIR');
  await t.rejects(readFileLimited(join(dir, 'sub'), 10), { code: 'HOST_IO', message: /is a directory/ });
  const big = join(dir, 'big');
  writeFileSync(big, Buffer.alloc(200_000, 1));
  t.equal((await readFileLimited(big, 200_000)).length, 200_000);
  t.ok(await exists(join(dir, 'sub')));
  t.notOk(await exists(join(dir, 'absent')));
  t.notOk(await exists(join(dir, 'file', 'x')), 'ENOTDIR is absent');
  symlinkSync(join(dir, 'absent'), join(dir, 'dangling'));
  t.equal(await statOrAbsent(join(dir, 'dangling')), undefined, 'stat follows a dangling link to nothing');
  t.ok((await lstatOrAbsent(join(dir, 'dangling')))?.isSymbolicLink(), 'lstat sees the link');
  symlinkSync('loop', join(dir, 'loop'));
  await t.rejects(statOrAbsent(join(dir, 'loop')), { code: 'HOST_IO', subject: join(dir, 'loop'), message: /ELOOP/ }, 'a symlink loop is not "absent"');
});

t.test('readFileLimited refuses endless and non-regular files at once (hostile input #3)', async (t) => {
  const dir = t.testdir({ 'ok.txt': 'fine' });
  const fifo = join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  symlinkSync('/dev/zero', join(dir, 'zero-link'));
  for (const [path, kind] of [['/dev/zero', 'a character device'], [fifo, 'a FIFO'], [join(dir, 'zero-link'), 'a character device']] as const) {
    await t.rejects(readFileLimited(path, 1024), { code: 'INPUT_INVALID', subject: path, message: `is not a regular file (${kind})` }, path);
  }
  t.equal((await readFileLimited(join(dir, 'ok.txt'), 1024)).toString(), 'fine');
});
