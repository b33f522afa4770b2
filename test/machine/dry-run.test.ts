import { t } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { runCli } from '../support/cli.js';
import { T, buildImages, makeSystemRoot, manifestYaml, mountsUnder, placeCa, publishYaml } from '../support/system.js';
import { currentGeneration } from '../../src/config/index.js';
import { treeHash } from '../support/tree.js';

// Operator issue, finding 9: a dry run on the commands that write (install, update, rollback, activate,
// deactivate, boot) checks
// everything a real run checks and writes nothing.
const skip = needs({ root: true, programs: ['mksquashfs'] });


t.test('dry runs write nothing', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-dry-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const repo = `oci:${join(work, 'pub')}`;
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo, name: 'machine/install:1', pki });
  const v11 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images, '1.1'), T.data(images)] }), repo, name: 'machine/install:2', pki });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const mosctl = (...args: string[]) => runCli('mosctl', ['--root', root, ...args]);

  const dry = await mosctl('install', v1.reference, '--dry-run');
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /^would install de6c82c5-2e01-4c92-949b-a6545d30fc06 \(manifest [0-9a-f]{12}, signed by .*\): \d+ bytes to fetch; nothing written\nTARGET +VERSION +DIGEST\nhostfs /);
  t.same(readdirSync(root).sort(), ['factory'], 'no store, no config: the root is as it was');
  const json = await mosctl('--json', 'install', v1.reference, '--dry-run');
  t.match(json.json, { dryRun: true, generation: 0, commit: '' });
  t.ok((json.json as { bytesToFetch: number }).bytesToFetch > 1_000_000);

  t.equal((await mosctl('install', v1.reference)).code, 0);
  t.equal((await mosctl('update', v11.reference)).code, 0);
  const rb = await mosctl('rollback', '--dry-run');
  t.equal(rb.code, 0, rb.stderr);
  t.match(rb.stdout, /^would roll back to generation 1: it verifies and its images are all in the store \(nothing committed\)\n$/);
  t.equal((await currentGeneration({ root })).number, 2, 'nothing committed');
  const none = await mosctl('rollback', '--to', '7', '--dry-run');
  t.equal(none.code, 6, 'a dry run refuses what the real run refuses');
  t.notOk(existsSync(join(root, 'config', 'operations')));

  // activate, deactivate and boot: what they would do, with the whole root unchanged by tree hash.
  const before = [...treeHash(root)];
  const act = await mosctl('activate', '-t', 'data', '--dry-run');
  t.equal(act.code, 0, act.stderr);
  t.match(act.stdout, /^data: would start at .*mnt\/atom\/data \(dry run; nothing changed\)$/m);
  const bootDry = await mosctl('--json', 'boot', '--dry-run');
  t.equal(bootDry.code, 0, bootDry.stderr);
  t.match(bootDry.json, { dryRun: true, targets: [{ ok: true, target: 'data', action: 'started', dryRun: true }], volumes: [{ label: 'appdata', created: true }, { label: 'cache', created: true }] });
  const bootText = await mosctl('boot', '--dry-run');
  t.match(bootText.stdout, /^volume appdata: would be created at /m);
  const deDry = await mosctl('deactivate', '-t', 'data', '--dry-run');
  t.match(deDry.stdout, /^data: would do nothing \(not active\) \(dry run; nothing changed\)$/m);
  t.equal(await mosctl('activate', '-t', 'hostfs', '--dry-run').then((r) => r.code), 3, 'a dry run refuses what activate refuses (hostfs)');
  t.same([...treeHash(root)], before, 'nothing under the root changed: no mount point, store, volume or record');
  t.same(mountsUnder(root), [], 'nothing mounted');

  // pin, unpin, mark-good, mark-bad: what they would record, nothing written.
  const pinDry = await mosctl('--json', 'pin', '1', '--dry-run');
  t.equal(pinDry.code, 0, pinDry.stderr);
  t.match(pinDry.json, { generation: 1, pinned: true, pins: [1], dryRun: true });
  t.match((await mosctl('unpin', '1', '--dry-run')).stdout, /^generation 1 \([0-9a-f]{12}\) would be unpinned; pinned then: none \(dry run; nothing written\)$/m);
  t.equal((await mosctl('pin', '9', '--dry-run')).code, 6, 'a generation that does not exist: refused as pin refuses it');
  t.match((await mosctl('mark-good', '--dry-run')).stdout, /^generation 2 would be marked good \(dry run; nothing written\)$/m);
  const bad = await mosctl('mark-bad', '--dry-run');
  t.equal(bad.code, 0, bad.stderr);
  t.match(bad.stdout, /^generation 2 would be marked bad: the next boot would fall back to generation 1 \(dry run; nothing written\)$/m);
  t.same([...treeHash(root)], before, 'still nothing changed');

  t.equal((await mosctl('activate', '-t', 'data')).code, 0);
  t.teardown(() => mosctl('deactivate', '-t', 'data'));
  const again = await mosctl('activate', '-t', 'data', '--dry-run');
  t.match(again.stdout, /^data: would leave unchanged \(already runs this image\)/m);
  const de = await mosctl('deactivate', '-t', 'data', '--dry-run');
  t.match(de.stdout, /^data: would unmount its root \(dry run; nothing changed\)$/m);
  t.equal(mountsUnder(root).length > 0, true, 'still mounted after the dry run');
  // umount --dry-run of a live-CD style mount (mount -t at mnt/mos/T): says it would unmount, leaves it.
  t.equal((await mosctl('mount', '-t', 'data', '--readonly')).code, 0);
  t.teardown(() => mosctl('umount', '-t', 'data'));
  const um = await mosctl('umount', '-t', 'data', '--dry-run');
  t.match(um.stdout, /^would unmount .*mnt\/mos\/data \(dry run; nothing changed\)$/m);
  t.ok(mountsUnder(root).some((m) => m.endsWith('/mnt/mos/data')), 'still mounted after the dry run');
  t.equal((await mosctl('umount', '-t', 'data')).code, 0);
  const remote = await runCli('mosctl', ['--server', 'https://127.0.0.1:9', '--cert', pki.leafCert, '--key', pki.leafKey, '--ca', pki.caCert, 'activate', '-t', 'data', '--dry-run']);
  t.equal(remote.code, 2, 'no remote dry run of activate');
});
