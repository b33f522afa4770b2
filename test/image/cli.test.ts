import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openLayout } from '../../src/oci/index.js';
import { buildImage } from '../../src/build/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { startRegistry } from '../support/registry.js';
import { blobNames, inspectLayout } from './support.js';

const TOOLS = ['mksquashfs', 'veritysetup', 'skopeo'];

function tree(dir: string): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin/hello'), '#!/bin/sh\necho hello\n');
  chmodSync(join(dir, 'bin/hello'), 0o755);
  chmodSync(dir, 0o755);
  return dir;
}

t.test('mosb image build prints the manifest digest; --json the descriptor and layers; builds are reproducible', { skip: needs({ programs: TOOLS }) }, async (t) => {
  const dir = t.testdir({});
  const a = tree(join(dir, 'a'));
  const layout = join(dir, 'layout');
  const text = await runCli('mosb', ['image', 'build', a, `oci:${layout}:one`, '--entrypoint', '["/bin/hello"]', '--cmd', 'a b', '--env', 'X=1', '--env', 'Y=2', '--workdir', '/bin', '--user', '1000:1000', '--label', 'org.example=yes']);
  t.equal(text.code, 0, text.stderr);
  const digest = text.stdout.trim();
  t.match(digest, /^sha256:[a-f0-9]{64}$/);
  t.equal(JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}:one`]).toString()).Digest, digest, 'skopeo sees the printed digest');
  const { config } = inspectLayout(layout, 'one');
  t.same(config.config, { Entrypoint: ['/bin/hello'], Cmd: ['a', 'b'], Env: ['X=1', 'Y=2'], WorkingDir: '/bin', User: '1000:1000', Labels: { 'org.example': 'yes' } });
  t.equal(config.created, '1970-01-01T00:00:00Z');

  // Another copy of the tree, written later: same digest.
  const b = tree(join(dir, 'b'));
  const json = await runCli('mosb', ['--json', 'image', 'build', b, `oci:${layout}:two`, '--entrypoint', '["/bin/hello"]', '--cmd', 'a b', '--env', 'X=1', '--env', 'Y=2', '--workdir', '/bin', '--user', '1000:1000', '--label', 'org.example=yes']);
  t.equal(json.code, 0, json.stderr);
  const res = json.json as { descriptor: { digest: string }; layers: { digest: string; rootHash: string; hashOffset: number }[] };
  t.equal(res.descriptor.digest, digest);
  t.equal(res.layers.length, 1);
  t.match(res.layers[0]!.rootHash, /^[a-f0-9]{64}$/);
});

t.test('mosb image build pushes to a registry, and --base/--from read from it', { skip: needs({ root: true, programs: [...TOOLS, 'docker-registry', 'umoci'] }) }, async (t) => {
  const reg = await startRegistry(t);
  const dir = t.testdir({});
  const a = tree(join(dir, 'a'));
  const pushed = await runCli('mosb', ['image', 'build', a, `${reg.host}/demo/base:1`, '--insecure-registry', reg.host]);
  t.equal(pushed.code, 0, pushed.stderr);
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/demo/base:1`]).toString());
  t.equal(inspected.Digest, pushed.stdout.trim());

  writeFileSync(join(a, 'bin/new'), 'new\n');
  const stacked = await runCli('mosb', ['--json', 'image', 'build', a, `oci:${join(dir, 'out')}:2`, '--base', `${reg.host}/demo/base:1`]);
  t.equal(stacked.code, 0, stacked.stderr);
  t.equal((stacked.json as { layers: unknown[] }).layers.length, 2);

  // A tar image in the registry converts with --from.
  const img = join(dir, 'tarimg');
  execFileSync('umoci', ['init', '--layout', img]);
  execFileSync('umoci', ['new', '--image', `${img}:v1`]);
  execFileSync('umoci', ['unpack', '--image', `${img}:v1`, join(dir, 'bundle')]);
  execFileSync('cp', ['-a', join(a, 'bin'), join(dir, 'bundle/rootfs/bin')]);
  execFileSync('umoci', ['repack', '--image', `${img}:v1`, join(dir, 'bundle')]);
  execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${img}:v1`, `docker://${reg.host}/demo/tar:v1`]);
  const converted = await runCli('mosb', ['--json', 'image', 'build', '--from', `${reg.host}/demo/tar:v1`, `${reg.host}/demo/squash:v1`]);
  t.equal(converted.code, 0, converted.stderr);
  const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/demo/squash:v1`]).toString());
  t.equal(manifest.layers[0].mediaType, 'application/vnd.stacker.image.layer.squashfs+zstd');
});

t.test('bad input: one clear error, the documented exit code, nothing written', { skip: needs({ root: true, programs: [...TOOLS, 'umoci'] }) }, async (t) => {
  const dir = t.testdir({ rootfs: { f: 'x' }, file: 'x' });
  const layout = join(dir, 'layout');
  const cases: { name: string; args: string[]; code: number; err: RegExp }[] = [
    { name: 'missing rootfs', args: [join(dir, 'nope'), `oci:${layout}:t`], code: 6, err: /nope: rootfs directory: no such file/ },
    { name: 'DEST without tag', args: [join(dir, 'rootfs'), `oci:${layout}`], code: 3, err: /DEST needs a tag/ },
    { name: 'bad entrypoint', args: [join(dir, 'rootfs'), `oci:${layout}:t`, '--entrypoint', '[1]'], code: 3, err: /--entrypoint: .* not a JSON array of strings/ },
    { name: '--from with two args', args: ['--from', `oci:${dir}/x:t`, join(dir, 'rootfs'), `oci:${layout}:t`], code: 2, err: /only DEST/ },
  ];
  for (const c of cases) {
    const r = await runCli('mosb', ['image', 'build', ...c.args]);
    t.equal(r.code, c.code, `${c.name}: exit code`);
    t.match(r.stderr, c.err, `${c.name}: message`);
    t.equal(r.stderr.trim().split('\n').filter((l) => !l.startsWith('hint:')).length, 1, `${c.name}: one error line`);
    t.equal(existsSync(layout), false, `${c.name}: no layout created`);
  }

  // A tar-layer base, or a squashfs image given to --from, is refused before the destination exists.
  const tarimg = join(dir, 'tarimg');
  execFileSync('umoci', ['init', '--layout', tarimg]);
  execFileSync('umoci', ['new', '--image', `${tarimg}:v1`]);
  execFileSync('umoci', ['insert', '--image', `${tarimg}:v1`, join(dir, 'file'), '/file']);
  const tarBase = await runCli('mosb', ['image', 'build', join(dir, 'rootfs'), `oci:${layout}:t`, '--base', `oci:${tarimg}:v1`]);
  t.equal(tarBase.code, 3, tarBase.stderr);
  t.match(tarBase.stderr, /base image is not a squashfs image/);
  t.equal(existsSync(layout), false);
  await buildImage({ rootfs: join(dir, 'rootfs'), dst: await openLayout(join(dir, 'sq'), { create: true }), tag: 't' });
  const before = blobNames(join(dir, 'sq'));
  const fromSquash = await runCli('mosb', ['image', 'build', '--from', `oci:${join(dir, 'sq')}:t`, `oci:${layout}:t`]);
  t.equal(fromSquash.code, 3, fromSquash.stderr);
  t.match(fromSquash.stderr, /not a tar layer/);
  t.equal(existsSync(layout), false);
  t.same(blobNames(join(dir, 'sq')), before);
});
