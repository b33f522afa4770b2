import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { commitGeneration, configPaths, createConfigRepo, listHistory, lockConfig, readGeneration } from '../../src/config/index.js';
import { needs } from '../support/env.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const files = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, enc(v)]));
const skip = needs({ programs: ['git', 'flock'] });

t.test('create, commit generations, read back at HEAD and older ones, history', { skip }, async (t) => {
  const root = t.testdir({});
  const { repoDir } = configPaths(root);
  const lock = await lockConfig(root);
  t.teardown(() => lock.release());
  const g1 = await createConfigRepo({ root, files: files({ 'manifest.json': '{"v":1}', 'a.json': 'A' }), message: 'Initial commit', now: new Date('2024-01-02T03:04:05Z') });
  t.match(g1.oid, /^[0-9a-f]{40}$/);
  const g2 = await commitGeneration({ root, files: files({ 'manifest.json': '{"v":2}', 'b.json': 'B' }), message: 'gen 2', parent: g1.oid });
  t.same(g2.number, 2);
  const g3 = await commitGeneration({ root, files: files({ 'manifest.json': '{"v":3}', 'b.json': 'B' }), message: 'gen 3' });
  t.same(g3.number, 3);

  const head = await readGeneration({ root });
  t.equal(head.oid, g3.oid);
  t.equal(head.number, 3);
  t.same([...head.files.keys()].sort(), ['b.json', 'manifest.json']);
  const one = await readGeneration({ root, ref: 1 });
  t.equal(one.oid, g1.oid);
  t.equal(one.message, 'Initial commit');
  t.same(one.time.toISOString(), '2024-01-02T03:04:05.000Z');
  t.equal(dec(one.files.get('a.json')), 'A');
  t.equal(one.files.has('b.json'), false, 'files of the commit, not of the worktree');
  t.equal((await readGeneration({ root, ref: g2.oid.slice(0, 8) })).number, 2, 'by abbreviated oid');
  t.equal((await readGeneration({ root, ref: 'HEAD' })).number, 3);

  const h = await listHistory({ root });
  t.same(h.map((g) => [g.number, g.oid, g.message, g.parent]), [
    [1, g1.oid, 'Initial commit', undefined],
    [2, g2.oid, 'gen 2', g1.oid],
    [3, g3.oid, 'gen 3', g2.oid],
  ]);

  // What the git CLI sees: mos's layout, clean repository, worktree in line with master.
  t.equal(git(repoDir, 'fsck', '--full', '--strict'), '');
  t.equal(git(repoDir, 'rev-parse', '--abbrev-ref', 'HEAD').trim(), 'master');
  t.equal(git(repoDir, 'log', '--format=%an <%ae>|%cn <%ce>', '-1').trim(), 'machine <root@machine.local>|machine <root@machine.local>');
  t.equal(git(repoDir, 'status', '--porcelain'), '');
  t.same(readdirSync(repoDir).sort(), ['.git', 'b.json', 'manifest.json']);
  t.equal(git(repoDir, 'config', 'core.filemode').trim(), 'true');
  t.notMatch(readFileSync(join(repoDir, '.git', 'config'), 'utf8'), /ignorecase|symlinks = false/, 'no ignorecase, like the git CLI on Linux');
  t.equal(git(repoDir, 'show', `${g2.oid}:manifest.json`), '{"v":2}');
});

t.test('refusals: existing repo, not installed, unknown generation, moved parent, bad names', { skip }, async (t) => {
  const root = t.testdir({});
  await t.rejects(readGeneration({ root }), { code: 'CONFIG_NOT_INSTALLED' });
  await t.rejects(listHistory({ root }), { code: 'CONFIG_NOT_INSTALLED' });
  await t.rejects(commitGeneration({ root, files: files({ a: 'x' }), message: 'm' }), { code: 'CONFIG_NOT_INSTALLED' });
  await t.rejects(createConfigRepo({ root, files: files({ '../x': 'x' }), message: 'm' }), { code: 'CONFIG_INVALID', subject: '../x' });
  await t.rejects(createConfigRepo({ root, files: new Map(), message: 'm' }), { code: 'CONFIG_INVALID' });
  t.notOk(existsSync(configPaths(root).repoDir), 'nothing created by a refused create');
  const g1 = await createConfigRepo({ root, files: files({ 'manifest.json': '{}' }), message: 'Initial commit' });
  await t.rejects(createConfigRepo({ root, files: files({ 'manifest.json': '{}' }), message: 'again' }), { code: 'CONFIG_EXISTS' });
  const g2 = await commitGeneration({ root, files: files({ 'manifest.json': '{"x":1}' }), message: 'two' });
  await t.rejects(commitGeneration({ root, files: files({ 'manifest.json': '{"x":2}' }), message: 'stale', parent: g1.oid }), { code: 'CONFIG_CONFLICT' });
  await t.rejects(commitGeneration({ root, files: files({ '.git': 'x' }), message: 'm' }), { code: 'CONFIG_INVALID' });
  t.equal((await readGeneration({ root })).oid, g2.oid, 'refused commits changed nothing');
  for (const ref of [0, 3, 1.5, 'zzzz', 'abc', 'f'.repeat(40), 'HEAD~1']) {
    await t.rejects(readGeneration({ root, ref }), { code: 'CONFIG_GENERATION_UNKNOWN' }, String(ref));
  }
});

t.test('a damaged repository is CONFIG_CORRUPT', { skip }, async (t) => {
  const root = t.testdir({});
  const g1 = await createConfigRepo({ root, files: files({ 'manifest.json': '{}' }), message: 'Initial commit' });
  const { repoDir } = configPaths(root);
  rmSync(join(repoDir, '.git', 'objects', g1.oid.slice(0, 2), g1.oid.slice(2)));
  await t.rejects(readGeneration({ root }), { code: 'CONFIG_CORRUPT' });
  rmSync(join(repoDir, '.git', 'refs', 'heads', 'master'));
  await t.rejects(listHistory({ root }), { code: 'CONFIG_CORRUPT', message: /no branch master/ });
});

t.test('a repository made by the git CLI in mos layout is read, and extended cleanly', { skip }, async (t) => {
  const root = t.testdir({ config: {} });
  const { repoDir } = configPaths(root);
  mkdirSync(repoDir);
  git(repoDir, 'init', '-q', '-b', 'master');
  const id = ['-c', 'user.name=machine', '-c', 'user.email=root@machine.local'];
  const sha = 'd'.repeat(64);
  writeFileSync(join(repoDir, 'manifest.json'), '{"uidmaps":[],"targets":[]}');
  writeFileSync(join(repoDir, `${sha}.json`), '{"version":1}');
  writeFileSync(join(repoDir, `${sha}.json.signed`), Buffer.from([0, 1, 2, 255]));
  git(repoDir, 'add', '.');
  git(repoDir, ...id, 'commit', '-q', '-m', 'Initial commit');
  writeFileSync(join(repoDir, 'manifest.json'), '{"uidmaps":null,"targets":[]}');
  git(repoDir, 'add', '.');
  git(repoDir, ...id, 'commit', '-q', '-m', 'System upgrade to (TODO - fill in version)');
  git(repoDir, 'gc', '-q'); // packed objects and packed refs, as a long-lived Go mos system has
  const cliHead = git(repoDir, 'rev-parse', 'master').trim();

  const head = await readGeneration({ root });
  t.equal(head.oid, cliHead);
  t.equal(head.number, 2);
  t.equal(head.message, 'System upgrade to (TODO - fill in version)');
  t.same([...(head.files.get(`${sha}.json.signed`) ?? [])], [0, 1, 2, 255], 'binary bytes exact');
  t.equal(dec((await readGeneration({ root, ref: 1 })).files.get('manifest.json')), '{"uidmaps":[],"targets":[]}');

  await using lock = await lockConfig(root);
  const g3 = await commitGeneration({ root, files: files({ 'manifest.json': '{}' }), message: 'mosctl on top', parent: cliHead });
  t.equal(g3.number, 3);
  t.equal(git(repoDir, 'rev-parse', 'master').trim(), g3.oid, 'the git CLI sees our commit');
  t.equal(git(repoDir, 'fsck', '--full', '--strict'), '');
  t.equal(git(repoDir, 'log', '--format=%s', '--first-parent').trim().split('\n').length, 3);
  void lock;
});

t.test('a busy lock fails at once naming the holder pid; wait gets it after release', { skip }, async (t) => {
  const root = t.testdir({});
  const held = await lockConfig(root);
  t.teardown(() => held.release());
  await t.rejects(lockConfig(root), { code: 'CONFIG_LOCKED', subject: configPaths(root).lockPath, message: new RegExp(`^locked by pid ${process.pid} \\(`) });
  const waiting = lockConfig(root, { wait: true });
  await held.release();
  const got = await waiting;
  await got.release();
  t.ok(readFileSync(configPaths(root).lockPath) !== undefined);
});

t.test('a failed worktree refresh is a warning naming the repo; the commit stands', { skip }, async (t) => {
  const root = t.testdir({});
  await createConfigRepo({ root, files: files({ 'manifest.json': '{}' }), message: 'Initial commit' });
  const { repoDir } = configPaths(root);
  // A non-empty directory where the new generation's file goes: checkout cannot write it.
  mkdirSync(join(repoDir, 'new.json', 'in-the-way'), { recursive: true });
  const warnings: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const log = { debug() {}, info() {}, warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push({ msg, fields }) };
  const g2 = await commitGeneration({ root, files: files({ 'manifest.json': '{}', 'new.json': 'N' }), message: 'two', log });
  t.equal((await readGeneration({ root })).oid, g2.oid, 'committed and current');
  t.match(warnings, [{ msg: /worktree was not refreshed/, fields: { repo: repoDir, error: String } }]);
});
