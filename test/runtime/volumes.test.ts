import { t } from 'tap';
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { prepareVolumes, shiftOwnership, ensureSubordinateIds, removeSubordinateIds, allocateIdmaps } from '../../src/runtime/index.js';

const skip = needs({ root: true, programs: ['flock'] });

t.test('persistent volumes survive boots and updates; non-persistent start empty each boot; owners per nsgroup', { skip }, async (t) => {
  const storageDir = join(t.testdir({}), 'storage');
  const idmaps = allocateIdmaps(['c1', 'c2'], []);
  const items = [
    { label: 'keep', persistent: true, nsgroup: 'c1' },
    { label: 'scratch', persistent: false, nsgroup: 'c2' },
    { label: 'hostvol', persistent: true, nsgroup: 'none' },
  ];
  const first = await prepareVolumes({ storageDir, items, idmaps, boot: true });
  t.same(first.map((v) => [v.label, v.created, v.wiped, v.owner]), [['keep', true, false, 100000], ['scratch', true, false, 165536], ['hostvol', true, false, 0]]);
  t.equal(lstatSync(join(storageDir, 'keep')).uid, 100000);
  t.equal(lstatSync(join(storageDir, 'scratch')).gid, 165536);
  writeFileSync(join(storageDir, 'keep', 'db'), 'precious');
  writeFileSync(join(storageDir, 'scratch', 'tmp'), 'junk');

  const update = await prepareVolumes({ storageDir, items, idmaps, boot: false }); // an update/activation, not a boot
  t.same(update.map((v) => v.wiped), [false, false, false]);
  t.ok(existsSync(join(storageDir, 'scratch', 'tmp')), 'non-persistent kept until the next boot');

  const second = await prepareVolumes({ storageDir, items, idmaps, boot: true });
  t.same(second.map((v) => [v.label, v.created, v.wiped]), [['keep', false, false], ['scratch', false, true], ['hostvol', false, false]]);
  t.equal(readFileSync(join(storageDir, 'keep', 'db'), 'utf8'), 'precious', 'persistent data kept across boots');
  t.same(readdirSync(join(storageDir, 'scratch')), [], 'non-persistent emptied at boot');
  t.equal(lstatSync(join(storageDir, 'scratch')).uid, 165536, 'fresh volume owned by its nsgroup');
});

t.test('bad volume input changes nothing', { skip }, async (t) => {
  const storageDir = join(t.testdir({}), 'storage');
  const cases = [
    { items: [{ label: 'ok', persistent: true }, { label: '../etc', persistent: true }], subject: 'storage[1].label' },
    { items: [{ label: 'a', persistent: true }, { label: 'a', persistent: false }], subject: 'storage[1].label' },
    { items: [{ label: 'a', persistent: true, nsgroup: 'unknown' }], subject: 'storage[0].nsgroup' },
  ];
  for (const c of cases) await t.rejects(prepareVolumes({ storageDir, items: c.items, idmaps: [], boot: true }), { code: 'INPUT_INVALID', subject: c.subject });
  t.notOk(existsSync(storageDir), 'storage dir not even created');
  mkdirSync(storageDir);
  writeFileSync(join(storageDir, 'file'), 'x');
  await t.rejects(prepareVolumes({ storageDir, items: [{ label: 'file', persistent: false }], idmaps: [], boot: true }), { code: 'INPUT_INVALID', subject: join(storageDir, 'file') });
  t.equal(readFileSync(join(storageDir, 'file'), 'utf8'), 'x');
});

t.test('shiftOwnership: lchown walk, set-id bits kept, idempotent after a cut-short run, moves to a new range', { skip }, async (t) => {
  const dir = t.testdir({ tree: { bin: { tool: 'x' }, home: { u: { f: 'y' } }, 'odd': 'z' } });
  const tree = join(dir, 'tree');
  const record = join(dir, 'shift.json');
  chmodSync(join(tree, 'bin', 'tool'), 0o4755);
  chownSync(join(tree, 'home', 'u'), 1000, 1000);
  chownSync(join(tree, 'home', 'u', 'f'), 1000, 50);
  chownSync(join(tree, 'odd'), 70000, 70000); // outside the container range: left alone
  symlinkSync('/etc/passwd', join(tree, 'link')); // must not chown the host file
  const before = lstatSync('/etc/passwd');
  // a run cut short: one file already shifted
  lchownSync(join(tree, 'bin'), 200000, 200000);
  const r = await shiftOwnership({ dir: tree, hostid: 200000, range: 65536, recordFile: record });
  t.equal(r.skipped, false);
  t.equal(lstatSync(join(tree, 'bin')).uid, 200000, 'not shifted twice');
  t.equal(lstatSync(join(tree, 'bin', 'tool')).uid, 200000);
  t.equal(lstatSync(join(tree, 'bin', 'tool')).mode & 0o7777, 0o4755, 'setuid bit restored');
  t.same([lstatSync(join(tree, 'home', 'u', 'f')).uid, lstatSync(join(tree, 'home', 'u', 'f')).gid], [201000, 200050]);
  t.equal(lstatSync(join(tree, 'odd')).uid, 70000);
  t.equal(lstatSync(join(tree, 'link')).uid, 200000, 'the symlink itself');
  t.equal(lstatSync('/etc/passwd').uid, before.uid, 'symlink target untouched');
  t.same(await shiftOwnership({ dir: tree, hostid: 200000, range: 65536, recordFile: record }), { skipped: true, changed: 0, from: 200000 });
  const moved = await shiftOwnership({ dir: tree, hostid: 300000, range: 65536, recordFile: record });
  t.equal(moved.from, 200000);
  t.same([lstatSync(join(tree, 'home', 'u', 'f')).uid, lstatSync(join(tree, 'home', 'u', 'f')).gid], [301000, 300050], 'moved from the old range, not double-shifted');
  await t.rejects(shiftOwnership({ dir: tree, hostid: 1000, range: 65536, recordFile: record }), { code: 'INPUT_INVALID' });
  await t.rejects(shiftOwnership({ dir: join(dir, 'nope'), hostid: 200000, range: 65536, recordFile: record }), { code: 'NOT_FOUND' });
});

t.test('ensureSubordinateIds appends once, removeSubordinateIds removes only ours', { skip }, async (t) => {
  const dir = t.testdir({ subuid: 'lxd:1000000:1000000000\nroot:100000:65536\n', subgid: 'root:100000:65536' });
  const opts = { subuidFile: join(dir, 'subuid'), subgidFile: join(dir, 'subgid'), lockFile: join(dir, 'lock') };
  t.same(await ensureSubordinateIds([{ hostid: 100000, range: 65536 }], opts), [], 'already covered');
  const added = await ensureSubordinateIds([{ hostid: 165536, range: 65536 }, { hostid: 165536, range: 65536 }], opts);
  t.same(added, [`${opts.subuidFile}: root:165536:65536`, `${opts.subgidFile}: root:165536:65536`]);
  t.equal(readFileSync(opts.subuidFile, 'utf8'), 'lxd:1000000:1000000000\nroot:100000:65536\nroot:165536:65536\n');
  t.equal(readFileSync(opts.subgidFile, 'utf8'), 'root:100000:65536\nroot:165536:65536\n', 'missing final newline handled');
  t.same(await ensureSubordinateIds([{ hostid: 165536, range: 65536 }], opts), [], 'idempotent');
  await removeSubordinateIds([{ hostid: 165536, range: 65536 }], opts);
  t.equal(readFileSync(opts.subuidFile, 'utf8'), 'lxd:1000000:1000000000\nroot:100000:65536\n');
});
