import { t, type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configPaths, createConfigRepo, commitGeneration, listHistory } from '../../src/config/index.js';
import { serializeInstallFile, serializeSysManifest, type InstallFile } from '../../src/manifest/index.js';
import { sha256Hex } from '../../src/base/index.js';
import { status } from '../../src/machine/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';

const skip = needs({ programs: ['git', 'flock'] });
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

function installFile(webDigest: string, webVersion: string): InstallFile {
  const net = { type: 'host' as const, ipv4: '', ipv6: '', ports: null };
  return {
    version: 1,
    product: 'de6c82c5-2e01-4c92-949b-a6545d30fc06',
    storage: [{ label: 'web-data', persistent: true, nsgroup: 'web', size: 64 }],
    targets: [
      { service_name: 'hostfs', version: '1.0.0', service_type: 'hostfs', network: net, nsgroup: '', digest: D1, storage: null, size: 500 },
      { service_name: 'web', version: webVersion, service_type: 'container', network: net, nsgroup: 'web', digest: webDigest, storage: [{ dest: '/data', label: 'web-data' }], size: 600 },
    ],
    update_type: 'complete',
  };
}

/** The files of a generation in mos's layout for one install manifest. */
function generationFiles(f: InstallFile, opts: { dropTarget?: string } = {}): Map<string, Uint8Array> {
  const raw = serializeInstallFile(f);
  const sha = sha256Hex(raw);
  const sys = serializeSysManifest({
    uidmaps: [{ 'idmap-name': 'web', hostid: 100000 }],
    targets: f.targets.map((x) => ({ name: x.service_name === opts.dropTarget ? 'ghost' : x.service_name, source: `${sha}.json` })),
    storage: f.storage,
  });
  return new Map([
    ['manifest.json', sys],
    [`${sha}.json`, raw],
    [`${sha}.json.signed`, new Uint8Array([1, 2, 3])],
    [`${sha}.pem`, new TextEncoder().encode('-----BEGIN CERTIFICATE-----\n')],
  ]);
}

async function installed(t: Test): Promise<string> {
  const root = t.testdir({});
  await createConfigRepo({ root, files: generationFiles(installFile(D1, '1.0.0')), message: 'Initial commit', now: new Date('2024-05-06T07:08:09Z') });
  await commitGeneration({ root, files: generationFiles(installFile(D2, '1.1.0')), message: 'System upgrade', now: new Date('2024-05-07T07:08:09Z') });
  return root;
}

t.test('mosctl status and history, human and --json', { skip }, async (t) => {
  const root = await installed(t);
  const s = await runCli('mosctl', ['--json', 'status', '--root', root]);
  t.equal(s.code, 0, s.stderr);
  t.match(s.json, {
    generation: { number: 2, message: 'System upgrade', time: '2024-05-07T07:08:09.000Z' },
    product: 'de6c82c5-2e01-4c92-949b-a6545d30fc06',
    update_type: 'complete',
    targets: [
      { name: 'hostfs', service_type: 'hostfs', version: '1.0.0', digest: D1, size: 500, nsgroup: '', network: 'host' },
      { name: 'web', service_type: 'container', version: '1.1.0', digest: D2, size: 600, nsgroup: 'web', network: 'host' },
    ],
    storage: [{ label: 'web-data', persistent: true, nsgroup: 'web', size: 64 }],
  });
  const human = await runCli('mosctl', ['status', '--rfs', root]);
  t.equal(human.code, 0);
  t.match(human.stdout, /^generation 2 +[0-9a-f]{12} +2024-05-07 07:08:09Z +System upgrade$/m);
  t.match(human.stdout, /^manifests +complete \(every target from one manifest\)$/m, 'the update_type row cannot read as "update completed"');
  t.match(human.stdout, /^web +container +1\.1\.0 +- +sha256:222222222222 +- +ABSENT +activate -t web$/m, "not activated: nothing runs, activate is next");
  const old = await runCli('mosctl', ['--json', 'status', '-r', root, '--generation', '1']);
  t.match(old.json, { generation: { number: 1 }, targets: [{}, { version: '1.0.0', digest: D1 }] });

  const h = await runCli('mosctl', ['--json', 'history', '--root', root]);
  t.equal(h.code, 0, h.stderr);
  t.match(h.json, { generations: [
    { number: 1, message: 'Initial commit', current: false, product: 'de6c82c5-2e01-4c92-949b-a6545d30fc06', targets: [{ name: 'hostfs', digest: D1 }, { name: 'web', digest: D1 }] },
    { number: 2, message: 'System upgrade', current: true, targets: [{ name: 'hostfs', digest: D1 }, { name: 'web', version: '1.1.0', digest: D2 }] },
  ] }, 'the document GET /v1/generations returns');
  const hh = await runCli('mosctl', ['history', '--root', root]);
  t.match(hh.stdout, /^GEN +COMMIT +TIME +BOOT +MESSAGE +TARGETS\n1 +[0-9a-f]{12} +2024-05-06 07:08:09Z +- +Initial commit +hostfs@sha256:111111111111 web@sha256:111111111111\n2\* /, "a system with no boot-assessment record shows - in BOOT");
});

t.test('not installed, unknown generation, corrupt generation: clear errors and exit codes', { skip }, async (t) => {
  const empty = t.testdir({});
  const n = await runCli('mosctl', ['status', '--root', empty]);
  t.equal(n.code, 6);
  t.match(n.stderr, /^mosctl: .*config\/manifest\.git: no system is installed here/m);
  const nj = await runCli('mosctl', ['--json', 'history', '--root', empty]);
  t.match(nj.json, { error: { code: 'CONFIG_NOT_INSTALLED' } });

  const root = await installed(t);
  const u = await runCli('mosctl', ['status', '--root', root, '--generation', '9']);
  t.equal(u.code, 6);
  t.match(u.stderr, /there is no generation 9/);

  // A system manifest naming a target its install manifest lacks: CONFIG_CORRUPT naming the target.
  await commitGeneration({ root, files: generationFiles(installFile(D2, '1.2.0'), { dropTarget: 'web' }), message: 'broken' });
  await t.rejects(status({ root }), { code: 'CONFIG_CORRUPT', subject: 'generation 3: target "ghost"' });
  const c = await runCli('mosctl', ['status', '--root', root]);
  t.equal(c.code, 5);
  t.match(c.stderr, /generation 3: target "ghost": is not defined in [0-9a-f]{64}\.json/);
  const h = await runCli('mosctl', ['--json', 'history', '--root', root]);
  t.equal(h.code, 0, 'history still lists every generation');
  t.match(h.json, { generations: [{ number: 1 }, { number: 2 }, { number: 3, problem: /ghost/ }] });

  // A <sha>.json whose bytes do not hash to its name.
  const files = generationFiles(installFile(D2, '1.3.0'));
  const name = [...files.keys()].find((k) => /^[0-9a-f]{64}\.json$/.test(k))!;
  files.set(name, serializeInstallFile(installFile(D1, '6.6.6')));
  await commitGeneration({ root, files, message: 'tampered' });
  await t.rejects(status({ root }), { code: 'CONFIG_CORRUPT', subject: `generation 4: ${name}`, message: /does not hash to its name/ });
});

t.test('status numbers generations right after commits by a foreign writer (git CLI, like Go mos)', { skip }, async (t) => {
  const root = await installed(t);
  const { repoDir } = configPaths(root);
  const record = join(repoDir, '.git', 'mosctl-generation');
  const git = (...args: string[]) => execFileSync('git', ['-C', repoDir, '-c', 'user.name=machine', '-c', 'user.email=root@machine.local', ...args], { encoding: 'utf8' });
  // Go mos writes the generation's files into the worktree and commits them with the git CLI.
  const foreignCommit = (f: InstallFile, message: string) => {
    for (const name of readdirSync(repoDir)) if (name !== '.git') rmSync(join(repoDir, name));
    for (const [name, bytes] of generationFiles(f)) writeFileSync(join(repoDir, name), bytes);
    git('add', '-A');
    git('commit', '-q', '--allow-empty', '-m', message);
  };
  const number = async () => {
    const s = await runCli('mosctl', ['--json', 'status', '--root', root]);
    t.equal(s.code, 0, s.stderr);
    const { number, commit } = (s.json as { generation: { number: number; commit: string } }).generation;
    return { number, commit };
  };
  const tip = () => git('rev-parse', 'master').trim();

  const before = readFileSync(record, 'utf8');
  t.match(before, /^[0-9a-f]{40} 2\n$/, 'our writers record the tip they made');
  foreignCommit(installFile(D1, '2.0.0'), 'System upgrade (Go mos)');
  foreignCommit(installFile(D2, '2.1.0'), 'System upgrade (Go mos) again');
  t.same(await number(), { number: 4, commit: tip() }, 'walks back to the recorded commit');
  t.equal((await status({ root })).generation.number, 4);
  t.equal((await listHistory({ root })).length, 4);
  t.equal(readFileSync(record, 'utf8'), before, 'readers never write the record');

  await commitGeneration({ root, files: generationFiles(installFile(D1, '3.0.0')), message: 'ours on top' });
  t.equal(readFileSync(record, 'utf8'), `${tip()} 5\n`);
  t.same(await number(), { number: 5, commit: tip() });

  // History rewritten under us: the recorded commit is no longer on master, so the number is counted.
  git('reset', '-q', '--hard', 'HEAD~3');
  foreignCommit(installFile(D2, '4.0.0'), 'after a reset');
  t.same(await number(), { number: 3, commit: tip() }, 'a record off the chain is not trusted');
  const g2 = git('rev-parse', 'master~1').trim();
  for (const text of ['garbage\n', '', `${tip()} x\n`, `${g2} 0\n`]) {
    writeFileSync(record, text);
    t.equal((await number()).number, 3, `malformed record ${JSON.stringify(text)} ignored`);
  }
  rmSync(record);
  t.equal((await number()).number, 3, 'no record: counted');
  const old = await runCli('mosctl', ['--json', 'status', '--root', root, '--generation', '1']);
  t.match(old.json, { generation: { number: 1, message: 'Initial commit' } });
  t.equal((await commitGeneration({ root, files: generationFiles(installFile(D1, '5.0.0')), message: 'next' })).number, 4);
  t.ok(statSync(record).isFile(), 'the next commit records again');
});
