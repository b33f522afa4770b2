import { t } from 'tap';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { hasProgram } from '../../src/host/index.js';

t.test('hasProgram scans PATH like command -v', async (t) => {
  const dir = t.testdir({ tool: '#!/bin/sh\n', plain: 'not executable', sub: { inner: '' } });
  chmodSync(join(dir, 'tool'), 0o755);
  chmodSync(join(dir, 'plain'), 0o644);
  const path = `/nonexistent:${join(dir, 'plain')}:${dir}`; // an absent dir and a file as PATH entries are skipped
  t.ok(await hasProgram('tool', path));
  t.notOk(await hasProgram('sub', path), 'a directory is not a program');
  t.ok(await hasProgram(join(dir, 'tool'), ''), 'a path with a slash is checked as it is');
  t.notOk(await hasProgram('plain', dir), 'no execute bit (as root X_OK fails only then)');
  t.notOk(await hasProgram('missing', path));
  t.notOk(await hasProgram('', path));
  t.ok(await hasProgram('sh'), 'the real PATH');
});
