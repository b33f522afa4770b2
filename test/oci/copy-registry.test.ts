import { t } from 'tap';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { fsck, openLayout } from '../../src/oci/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { startRegistry } from '../support/registry.js';

// `mosb image copy` against Debian's docker-registry, with skopeo as the independent side.

const req = needs({ programs: ['docker-registry', 'skopeo', 'umoci'] });

interface SkopeoInspect {
  Digest: string;
  Layers: string[];
}

async function inspect(ref: string, ...flags: string[]): Promise<SkopeoInspect> {
  return JSON.parse((await exec(['skopeo', 'inspect', ...flags, ref])).stdout) as SkopeoInspect;
}

t.test('skopeo push -> mosb image copy -> layout skopeo reads back; and back to the registry', { skip: req }, async (t) => {
  const reg = await startRegistry(t);
  const dir = t.testdir({ file: 'layer two\n' });
  const lay = join(dir, 'umoci');
  await exec(['umoci', 'init', '--layout', lay]);
  await exec(['umoci', 'new', '--image', `${lay}:base`]);
  await exec(['umoci', 'insert', '--image', `${lay}:base`, join(dir, 'file'), '/etc/one']);
  await exec(['umoci', 'insert', '--image', `${lay}:base`, join(dir, 'file'), '/etc/two']);
  await exec(['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${lay}:base`, `docker://${reg.host}/mos/test:1`]);
  const pushed = await inspect(`docker://${reg.host}/mos/test:1`, '--tls-verify=false');

  const store = join(dir, 'store');
  const r = await runCli('mosb', ['--json', 'image', 'copy', `docker://${reg.host}/mos/test:1`, `oci:${store}:${pushed.Digest}`]);
  t.equal(r.code, 0, r.stderr);
  const result = r.json as { descriptor: { digest: string }; blobsCopied: number; blobsSkipped: number };
  t.equal(result.descriptor.digest, pushed.Digest);
  t.equal(result.blobsCopied, 3, 'config + 2 layers');
  const progress = r.stderr.split('\n').filter((l) => l.startsWith('{"progress"')).map((l) => JSON.parse(l) as { progress: { kind: string } });
  t.ok(progress.some((p) => p.progress.kind === 'blob-done'), 'JSON progress lines on stderr with --json');

  const back = await inspect(`oci:${store}:${pushed.Digest}`);
  t.equal(back.Digest, pushed.Digest, 'skopeo reads our layout: same manifest digest');
  t.same(back.Layers, pushed.Layers, 'same layer digests');
  t.ok((await fsck(await openLayout(store))).ok);

  const again = await runCli('mosb', ['--json', 'image', 'copy', `${reg.host}/mos/test:1`, `oci:${store}:${pushed.Digest}`]);
  t.same([(again.json as { blobsCopied: number }).blobsCopied, (again.json as { blobsSkipped: number }).blobsSkipped], [0, 3], 'nothing fetched twice');

  const up = await runCli('mosb', ['image', 'copy', `oci:${store}:${pushed.Digest}`, `docker://${reg.host}/mos/${pushed.Digest.slice(7)}:${pushed.Digest.slice(7)}`]);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, /already present/);
  const reup = await inspect(`docker://${reg.host}/mos/${pushed.Digest.slice(7)}:${pushed.Digest.slice(7)}`, '--tls-verify=false');
  t.equal(reup.Digest, pushed.Digest, 'pushed back with the same digest');

  const raw = await runCli('mosb', ['image', 'inspect', '--raw', `oci:${store}:${pushed.Digest}`]);
  t.equal(raw.stdout.trimEnd(), (await readFile(join(store, 'blobs', 'sha256', pushed.Digest.slice(7)), 'utf8')).trimEnd());
  const summary = await runCli('mosb', ['--json', 'image', 'inspect', `${reg.host}/mos/test:1`]);
  t.equal(summary.code, 0, summary.stderr);
  t.match(summary.json, { descriptor: { digest: pushed.Digest }, os: 'linux', layers: [{}, {}] });
});

t.test('bad references and missing images: one clear error, nothing created', { skip: req }, async (t) => {
  const reg = await startRegistry(t);
  const dir = t.testdir({});
  const store = join(dir, 'store');
  const bad = await runCli('mosb', ['image', 'copy', 'oci:', `oci:${store}:x`]);
  t.equal(bad.code, 3);
  t.match(bad.stderr, /^mosb: oci:: missing layout directory/m);
  const missing = await runCli('mosb', ['image', 'copy', `docker://${reg.host}/mos/absent:1`, `oci:${store}:x`]);
  t.equal(missing.code, 6, missing.stderr);
  t.match(missing.stderr, /mos\/absent/);
  t.notOk(existsSync(store), 'the destination layout was not even created');
  const badDst = await runCli('mosb', ['image', 'copy', `docker://${reg.host}/mos/absent:1`, 'docker://Bad Host/x']);
  t.equal(badDst.code, 3);
  const conc = await runCli('mosb', ['image', 'copy', '--concurrency', '0', 'oci:a:b', 'oci:c:d']);
  t.equal(conc.code, 2);
});
