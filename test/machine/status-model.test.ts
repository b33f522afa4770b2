import { t } from 'tap';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { schemaErrors } from '../support/schema.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { activate, createBootFs, deactivate, install, statusModel, umountTarget, update, type StatusModel } from '../../src/machine/index.js';

// Operator finding 1: status tells what runs from what is installed. An fs-only target mounted at
// 1.0.0 and updated to 1.1.0 shows both and "restart" as the next step; a new hostfs shows the booted
// and the staged generation and "reboot". Every model is checked against its JSON Schema
// (components.schemas.Status of openapi.json), the CLI's --json output too (runCli checks it).
const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup'] });

t.test('status: booted, staged, rollback; installed against running; what it takes to apply', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-status-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const layout = `oci:${join(work, 'pub')}`;
  const data11 = `  - {service_name: data, source: "oci:${images.layout}:extra-1.0", version: "1.1.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`;
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: layout, name: 'machine/install:1', pki });
  const v2 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images, '1.1'), data11] }), repo: layout, name: 'machine/install:2', pki });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const conforms = (m: StatusModel, label: string) => t.same(schemaErrors('Status', JSON.parse(JSON.stringify(m))), [], `${label}: follows the Status schema`);
  const target = (m: StatusModel, name: string) => m.status.targets.find((x) => x.name === name)!;

  await install({ root, source: v1.reference });
  let m = await statusModel(root);
  conforms(m, 'installed, not booted');
  t.strictSame(m.spec, { source: v1.reference, generation: 1, commit: m.generation.commit }, 'spec: the tracked source and the current generation');
  t.notOk(m.status.booted, 'not booted by a mosctl initrd: no booted entry');
  t.equal(m.status.rebootRequired, false);
  t.match(target(m, 'data'), { installed: { version: '1.0.0' }, apply: 'activate' }, 'data is installed, nothing runs it');
  t.notOk(target(m, 'data').running);
  t.ok(target(m, 'data').imageBytes! > 4096, `SIZE is the image's bytes in the store (${target(m, 'data').imageBytes}), not its manifest's`);

  // Boot it: create-boot-fs records what this boot assembled; activate mounts data.
  const sysroot = join(work, 'sysroot');
  await createBootFs({ root, dest: sysroot });
  t.teardown(() => umountTarget({ root, dest: sysroot }).catch(() => {}));
  t.teardown(() => deactivate({ root, target: 'data' }).catch(() => {}));
  await activate({ root, target: 'data' });
  m = await statusModel(root);
  conforms(m, 'booted');
  t.strictSame(m.status.booted, { generation: 1, commit: m.generation.commit }, 'booted: generation 1');
  t.notOk(m.status.staged, 'nothing staged');
  t.match(target(m, 'hostfs'), { running: { version: '1.0.0', digest: images.digests['hostfs-1.0'] }, apply: 'none' });
  t.match(target(m, 'data'), { running: { version: '1.0.0', digest: images.digests['data-1.0'] }, apply: 'none' });

  // The update: the mount still serves 1.0.0, the booted hostfs is still 1.0.
  await update({ root, source: v2.reference });
  m = await statusModel(root);
  conforms(m, 'updated');
  t.strictSame(m.status.booted, { generation: 1, commit: m.status.booted!.commit }, 'still booted from generation 1');
  t.match(m.status.staged, { generation: 2, commit: m.generation.commit }, 'generation 2 is staged');
  t.match(m.status.rollback, { generation: 1 }, 'a rollback goes to generation 1');
  t.equal(m.status.rebootRequired, true, 'the new hostfs needs a reboot');
  t.match(target(m, 'hostfs'), { installed: { version: '1.1.0' }, running: { version: '1.0.0' }, apply: 'reboot' });
  t.match(target(m, 'data'), { installed: { version: '1.1.0', digest: images.digests['extra-1.0'] }, running: { version: '1.0.0', digest: images.digests['data-1.0'] }, apply: 'restart' });
  const text = await runCli('mosctl', ['--root', root, 'status']);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^booted +generation 1 +[0-9a-f]{12}$/m);
  t.match(text.stdout, /^staged +generation 2 +[0-9a-f]{12} +\(committed, boots next: reboot to run its hostfs\)$/m);
  t.match(text.stdout, /^rollback +generation 1 /m);
  t.match(text.stdout, /^data +fs-only +1\.1\.0 +1\.0\.0 +sha256:[0-9a-f]{12} +\d+(\.\d)? [KM]iB +MOUNTED +activate -t data \(restarts\)$/m, 'the row says what runs and what is next');
  t.match(text.stdout, /^hostfs +hostfs +1\.1\.0 +1\.0\.0 +sha256:[0-9a-f]{12} +.+ +reboot$/m);
  const js = await runCli('mosctl', ['--json', '--root', root, 'status']);
  t.match(js.json, { apiVersion: 'mosctl/v1', kind: 'Status', status: { rebootRequired: true } }, 'the CLI prints the same model (checked against the schema by runCli)');

  // activate applies it.
  await activate({ root, target: 'data' });
  m = await statusModel(root);
  t.match(target(m, 'data'), { running: { version: '1.1.0', digest: images.digests['extra-1.0'] }, apply: 'none' }, 'after activate: data runs what is installed');
  await deactivate({ root, target: 'data' });
  m = await statusModel(root);
  t.match(target(m, 'data'), { apply: 'activate' }, 'deactivated: nothing runs it');
  t.notOk(target(m, 'data').running);
});
