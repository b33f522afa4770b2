import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { runCli } from '../support/cli.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { commitGeneration, currentGeneration, lockConfig, readGeneration } from '../../src/config/index.js';
import {
  assess, bootStatus, createBootFs, history, install, markBad, markGood, readBootEvents, readBootState, readBootedRecord, readAssessConfig, systemGc, umountTarget, update,
} from '../../src/machine/index.js';
import { writeBootState } from '../../src/machine/boot-state.js';

// Boot assessment on the host, with real squashfs/overlay mounts and a real config repository: the
// initrd's decision (create-boot-fs counts a try before it mounts, falls back when none is left), the
// host's assessment (health checks, window), known-bad manifests, the operators' marks, and every
// power-cut point of the fallback. The same paths run in a real boot in test/assessment/fallback-vm.test.ts.
const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup'] });

t.test('boot assessment', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-assess-work-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const repo = `oci:${join(work, 'rel')}`;
  const pub = (name: string, v: string) => publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images, v), T.data(images)] }), repo, name, pki });
  const v10 = await pub('machine/install:1.0', '1.0');
  const v11 = await pub('machine/install:1.1', '1.1');
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const dest = join(root, 'sysroot');
  const bootOnce = async () => {
    const r = await createBootFs({ root, dest });
    await umountTarget({ root, dest });
    return r;
  };
  const sha = (r: { manifest: string }) => r.manifest;
  const stateBytes = () => readFileSync(join(root, 'config', 'boot-state.json'));
  const checks = join(work, 'health.d');
  mkdirSync(checks, { recursive: true });

  await t.test('install: generation 1 is good; its boot counts nothing', async (t) => {
    await install({ root, source: v10.reference });
    const s = await readBootState(root);
    t.equal(s?.good?.generation, 1);
    t.equal(s?.tries, 2, 'two tries by default');
    const r = await bootOnce();
    t.equal(r.boot?.state, 'good');
    t.notOk(r.boot?.try, 'no try taken from a good generation');
    t.equal((await readBootedRecord(root))?.generation, 1, 'run/mosctl/booted.json says what this boot assembled');
  });

  await t.test('an update is pending; each boot takes a try first; out of tries the good generation comes back', async (t) => {
    const u = await update({ root, source: v11.reference });
    t.equal(u.generation, 2);
    t.match(await bootStatus(root), { state: 'pending', trial: { generation: 2, tries: 2, left: 2 } });
    const b1 = await bootOnce();
    t.match(b1.boot, { generation: 2, state: 'trying', try: { n: 1, of: 2 } });
    t.equal((await readBootState(root))?.trial?.left, 1, 'the try is on disk before the boot goes on');
    const b2 = await bootOnce();
    t.match(b2.boot, { try: { n: 2, of: 2 } });
    const b3 = await bootOnce();
    t.match(b3.boot, { generation: 3, state: 'good', fallback: { from: 2, to: 1, reason: /^assessment: not finished in 2 boots/ } }, 'the third boot falls back');
    const gens = await history({ root });
    t.equal(b3.digest, gens[0]?.targets.find((x) => x.name === 'hostfs')?.digest, "generation 1's hostfs is what the fallback boot mounted");
    t.same(gens.map((g) => g.boot?.state ?? '-'), ['good', 'failed', 'good'], 'history: 1 was good, 2 failed, 3 (the fallback) is good');
    t.match(gens[1]?.boot?.detail, /^assessment: not finished in 2 boots/);
    const ht = await runCli('mosctl', ['--root', root, 'history']);
    t.match(ht.stdout, /\n2 +[0-9a-f]{12} +\S+ \S+ +failed \(assessment\) +Update /, 'the BOOT column says generation 2 failed its assessment');
    const head = await currentGeneration({ root });
    t.equal(head.number, 3);
    t.match(head.message, /^Fallback to generation 1: generation 2 failed/);
    t.same([...(await readGeneration({ root, ref: 3 })).files.keys()].sort(), [...(await readGeneration({ root, ref: 1 })).files.keys()].sort(), 'generation 3 is generation 1 again');
    const s = await readBootState(root);
    t.equal(s?.good?.generation, 3);
    t.notOk(s?.trial, 'no trial left');
    t.same(s?.failed.map((f) => f.manifest), [sha(v11)], 'the 1.1 install manifest is known bad');
    t.same((await readBootEvents(root)).map((e) => e.event), ['good', 'pending', 'trying', 'trying', 'failed', 'fallback']);
  });

  await t.test('a known-bad manifest is refused until --retry-failed; the refusal changes nothing', async (t) => {
    const before = stateBytes();
    const head = await currentGeneration({ root });
    await t.rejects(update({ root, source: v11.reference }), { code: 'SYSTEM_MANIFEST_FAILED', message: /generation 2 \(assessment: not finished in 2 boots/ });
    t.same(stateBytes(), before);
    t.equal((await currentGeneration({ root })).oid, head.oid);
    const cli = await runCli('mosctl', ['--root', root, 'update', v11.reference]);
    t.equal(cli.code, 8);
    t.match(cli.stderr, /failed its boot assessment.*--retry-failed/s);
    const u = await update({ root, source: v11.reference, retryFailed: true, tries: 1 });
    t.equal(u.generation, 4);
    t.match(await readBootState(root), { trial: { generation: 4, tries: 1, left: 1 }, failed: [] });
  });

  await t.test('assess: healthy for the window with passing checks: good, and the trial record is gone', async (t) => {
    writeFileSync(join(checks, '10-ok'), '#!/bin/sh\necho fine\n', { mode: 0o755 });
    writeFileSync(join(checks, 'README'), 'not a check\n', { mode: 0o644 });
    await t.rejects(assess({ root, units: [], window: 0.2, interval: 0.05, checksDir: checks, reboot: false }).then((r) => (r.outcome === 'skipped' ? Promise.reject(new Error(r.detail)) : r)), /staged for the next boot/, 'a generation this boot did not assemble is not assessed');
    const b = await bootOnce();
    t.match(b.boot, { generation: 4, try: { n: 1, of: 1 } });
    const r = await assess({ root, units: [], window: 0.3, interval: 0.05, checksDir: checks, reboot: false });
    t.equal(r.outcome, 'good', r.detail);
    t.same(r.checks, ['health.d/10-ok'], 'executables only');
    t.ok(r.elapsed >= 0.3, 'the whole window');
    const s = await readBootState(root);
    t.equal(s?.good?.generation, 4);
    t.notOk(s?.trial);
    t.same((await readBootEvents(root, { last: 3 })).map((e) => e.event), ['trying', 'assessing', 'good']);
    t.equal((await assess({ root, units: [], window: 0, checksDir: checks, reboot: false })).outcome, 'skipped', 'a good generation is not assessed again');
  });

  await t.test('a failing check: recorded with its output, the next boot falls back; mark-bad and mark-good', async (t) => {
    const u = await update({ root, source: v10.reference, allowDowngrade: true });
    t.equal(u.generation, 5);
    await bootOnce();
    writeFileSync(join(checks, '50-web'), '#!/bin/sh\necho "web: connection refused" >&2\nexit 3\n', { mode: 0o755 });
    const r = await assess({ root, units: [], window: 5, interval: 0.05, checksDir: checks, reboot: false });
    t.equal(r.outcome, 'failed');
    t.match(r.failure, { check: 'health.d/50-web', reason: 'exited 3: web: connection refused' });
    t.ok(r.elapsed < 5, 'a failing check ends the window at once');
    t.match(await bootStatus(root), { state: 'trying', trial: { left: 1, lastFailure: { check: 'health.d/50-web' } } });
    const st = await runCli('mosctl', ['--root', root, 'status']);
    t.match(st.stdout, /last failure: health\.d\/50-web: exited 3: web: connection refused/, 'status names the failing check');
    const cli = await runCli('mosctl', ['--root', root, 'assess', '--no-units', '--window', '1', '--interval', '0.1', '--checks', checks, '--no-reboot']);
    t.equal(cli.code, 5, 'assess exits non-zero on a failed check');
    await markBad(root, { reason: 'web never answers' });
    t.equal((await readBootState(root))?.trial?.left, 0);
    const b = await bootOnce();
    t.match(b.boot, { generation: 6, fallback: { from: 5, to: 4, reason: 'operator: web never answers' } });
    t.equal((await readBootState(root))?.failed.at(-1)?.manifest, sha(v10));
    await t.rejects(markBad(root), { code: 'INPUT_INVALID', message: /is the good generation/ }, 'the good generation is not marked bad');
    await update({ root, source: v10.reference, allowDowngrade: true, retryFailed: true });
    await markGood(root);
    t.equal((await readBootState(root))?.good?.generation, 7);
    t.equal((await readBootEvents(root, { last: 1 }))[0]?.event, 'marked-good');
  });

  await t.test('power cuts inside the fallback: the next boot completes it the same way', async (t) => {
    await update({ root, source: v11.reference, tries: 1 });
    const g8 = await currentGeneration({ root });
    await bootOnce(); // try 1 of 1
    // The cut after step 2 (fallback committed, record not yet updated): the record says failed.
    const s = (await readBootState(root))!;
    await writeBootState(root, { ...s, trial: { ...s.trial!, left: 0, state: 'failed' } });
    {
      await using _l = await lockConfig(root);
      const good = await readGeneration({ root, ref: 7 });
      await commitGeneration({ root, files: good.files, message: 'Fallback to generation 7', parent: g8.oid });
    }
    const b = await bootOnce();
    t.match(b.boot, { generation: 9, state: 'good', note: /fallback from generation 8 completed/ });
    t.equal((await readBootState(root))?.good?.generation, 9);
    t.equal((await currentGeneration({ root })).number, 9, 'no second fallback commit');
  });

  await t.test('a damaged record: updates refused naming it; a boot still comes up, unassessed', async (t) => {
    const good = stateBytes();
    writeFileSync(join(root, 'config', 'boot-state.json'), '{"version":1,"tries":0}');
    await t.rejects(update({ root, source: v10.reference, allowDowngrade: true }), { code: 'CONFIG_CORRUPT', subject: /boot-state\.json$/ });
    const b = await bootOnce();
    t.match(b.boot, { state: 'unassessed', note: /damaged/ });
    writeFileSync(join(root, 'config', 'boot-state.json'), good);
  });

  await t.test('gc --keep 1 keeps the good generation', async (t) => {
    await update({ root, source: v10.reference, allowDowngrade: true });
    await update({ root, source: v11.reference, tries: 1 });
    const r = await systemGc({ root, keep: 1 });
    t.ok(r.keptGenerations.includes(9), `kept ${r.keptGenerations.join(',')}`);
  });

  await t.test('assess.yaml and flags: a wrong value is refused naming it', async (t) => {
    mkdirSync(join(root, 'etc', 'mosctl'), { recursive: true });
    writeFileSync(join(root, 'etc', 'mosctl', 'assess.yaml'), 'window: 20\nunits: [multi-user.target]\n');
    t.match(await readAssessConfig(root), { window: 20, units: ['multi-user.target'], interval: 5 });
    writeFileSync(join(root, 'etc', 'mosctl', 'assess.yaml'), 'windw: 20\n');
    await t.rejects(readAssessConfig(root), { code: 'CONFIG_INVALID', subject: /assess\.yaml: windw$/ });
    writeFileSync(join(root, 'etc', 'mosctl', 'assess.yaml'), 'window: -1\n');
    await t.rejects(readAssessConfig(root), { code: 'CONFIG_INVALID', subject: /: window$/ });
    const cli = await runCli('mosctl', ['--root', root, 'assess', '--window', 'soon']);
    t.equal(cli.code, 2);
    t.match(cli.stderr, /--window: must be a number of seconds/);
    const tries = await runCli('mosctl', ['--root', root, 'update', '--tries', '0', v10.reference]);
    t.equal(tries.code, 2);
  });

  t.ok(existsSync(join(root, 'config', 'boot-events.jsonl')));
  t.doesNotThrow(() => execFileSync('git', ['-C', join(root, 'config', 'manifest.git'), 'fsck', '--strict'], { stdio: 'pipe' }), 'the config repository is fsck-clean');
});
