import { t } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fallbackTag } from '../../src/oci/index.js';
import { parseDestination, publish, type PublishOptions } from '../../src/build/index.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { freePort, startRegistry } from '../support/registry.js';
import { PROGRAMS, sharedImages, catalog, curlJson, sharedProject, manifestYaml } from './fixture.js';

const skip = needs({ programs: [...PROGRAMS, 'htpasswd'] });
const ZERO = `sha256:${'0'.repeat(64)}`;

t.test('parseDestination: --repo and --name', async (t) => {
  t.strictSame(parseDestination('127.0.0.1:5000', 'machine/install:1.0.0'), { kind: 'registry', host: '127.0.0.1:5000', name: 'machine/install', tag: '1.0.0' });
  t.strictSame(parseDestination('docker://reg.example:5000/', 'a/b:c'), { kind: 'registry', host: 'reg.example:5000', name: 'a/b', tag: 'c' });
  t.strictSame(parseDestination('oci:/srv/cd/oci', 'machine/install:1.0.0'), { kind: 'layout', dir: '/srv/cd/oci', tag: '1.0.0' });
  const bad: [string, string, string][] = [
    ['127.0.0.1:5000', 'machine/install', '--name machine/install'],
    ['127.0.0.1:5000', 'x@sha256:' + '0'.repeat(64), '--name x@sha256:' + '0'.repeat(64)],
    ['127.0.0.1:5000', 'Machine/install:1', '--repo 127.0.0.1:5000 --name Machine/install:1'],
    ['127.0.0.1:5000', 'machine/install:bad tag', '--repo 127.0.0.1:5000 --name machine/install:bad tag'],
    ['oci:', 'a:1', '--repo oci:'],
    ['host/path', 'a:1', '--repo host/path'],
    ['oci:/srv/cd/oci', '../../x:1.0', '--name ../../x:1.0'],
    ['oci:/srv/cd/oci', 'Machine/install:1.0', '--name Machine/install:1.0'],
  ];
  for (const [repo, name, subject] of bad) t.throws(() => parseDestination(repo, name), { code: 'OCI_REFERENCE_INVALID', subject }, `${repo} ${name}`);
});

t.test('bad inputs: one clear error each, nothing pushed', { skip }, async (t) => {
  const dir = t.testdir({});
  const [images, project, reg, other] = await Promise.all([sharedImages(), sharedProject(), startRegistry(t), mintPki(t, { leafKey: 'ec256' })]);
  const base: PublishOptions = { manifestFile: 'm.yaml', yaml: manifestYaml(images), repo: reg.host, name: 'machine/install:1.0.0', project: 'snakeoil:default', dataHome: project.dataHome };
  const cases: { name: string; opts: Partial<PublishOptions>; code: string; subject: string | RegExp; message?: RegExp }[] = [
    { name: 'invalid YAML', opts: { yaml: 'version: 1\nproduct: [\n' }, code: 'MANIFEST_INVALID', subject: 'm.yaml', message: /YAML/ },
    { name: 'unknown service_type', opts: { yaml: manifestYaml(images).replace('service_type: fs-only', 'service_type: vm') }, code: 'MANIFEST_INVALID', subject: 'm.yaml: targets[1].service_type' },
    { name: 'version 2', opts: { yaml: manifestYaml(images).replace('version: 1\n', 'version: 2\n') }, code: 'MANIFEST_UNSUPPORTED', subject: 'm.yaml: version' },
    { name: 'unknown layout tag', opts: { yaml: manifestYaml(images, { appSource: `oci:${images.layout}:nope` }) }, code: 'OCI_TAG_UNKNOWN', subject: 'm.yaml: targets[1].source', message: /nope/ },
    { name: 'missing layout', opts: { yaml: manifestYaml(images, { appSource: `oci:${dir}/absent:app-1.0` }) }, code: 'NOT_FOUND', subject: 'm.yaml: targets[1].source', message: /absent/ },
    { name: 'unknown registry image', opts: { yaml: manifestYaml(images, { appSource: `docker://${reg.host}/nothing/here:1.0` }) }, code: 'OCI_TAG_UNKNOWN', subject: 'm.yaml: targets[1].source' },
    { name: 'digest mismatch', opts: { yaml: manifestYaml(images, { hostfsExtra: `    digest: ${ZERO}` }) }, code: 'OCI_DIGEST_MISMATCH', subject: 'm.yaml: targets[0].digest' },
    { name: 'size mismatch', opts: { yaml: manifestYaml(images, { hostfsExtra: `    size: ${images.hostfs.size + 1}` }) }, code: 'OCI_SIZE_MISMATCH', subject: 'm.yaml: targets[0].size' },
    { name: 'project without keys', opts: { project: 'snakeoil:nobody' }, code: 'TRUST_KEYSET_UNKNOWN', subject: /manifest\/nobody\/privkey\.pem$/, message: /snakeoil:nobody/ },
    { name: 'no signer at all', opts: { project: undefined }, code: 'USAGE', subject: '--project', message: /no signing key/ },
    { name: 'cert without key', opts: { project: undefined, cert: other.leafCert }, code: 'USAGE', subject: '--key' },
    { name: 'missing key file', opts: { project: undefined, cert: other.leafCert, key: join(dir, 'absent.pem') }, code: 'NOT_FOUND', subject: join(dir, 'absent.pem') },
    { name: 'key of another cert', opts: { project: undefined, cert: other.leafCert, key: project.paths.key }, code: 'TRUST_KEY_INVALID', subject: project.paths.key, message: /not the key of the certificate/ },
    { name: 'name without tag', opts: { name: 'machine/install' }, code: 'OCI_REFERENCE_INVALID', subject: '--name machine/install' },
    { name: 'repo with a path', opts: { repo: `${reg.host}/machine` }, code: 'OCI_REFERENCE_INVALID', subject: `--repo ${reg.host}/machine` },
  ];
  for (const c of cases) {
    const err = await publish({ ...base, ...c.opts }).then(() => undefined, (e: unknown) => e);
    t.match(err, { code: c.code, subject: c.subject, ...(c.message ? { message: c.message } : {}) }, c.name);
  }
  // A digest-mismatch fixture needs a 'digest:' line under hostfs: check the YAML really carried it.
  t.match(manifestYaml(images, { hostfsExtra: `    digest: ${ZERO}` }), /digest: sha256:0+\n/);
  t.strictSame(await catalog(reg.host), [], 'no repository was created by any rejected publish');
});

t.test('unreachable and unwritable registries fail clearly; a later publish is not tripped up', { skip }, async (t) => {
  const dir = t.testdir({});
  const [images, project, reg] = await Promise.all([sharedImages(), sharedProject(), startRegistry(t, { auth: 'basic' })]);
  const base: PublishOptions = { manifestFile: 'm.yaml', yaml: manifestYaml(images), repo: reg.host, name: 'machine/install:1.0.0', project: 'snakeoil:default', dataHome: project.dataHome };

  const port = await freePort();
  await t.rejects(publish({ ...base, repo: `127.0.0.1:${port}` }), { code: 'REGISTRY_UNREACHABLE', subject: new RegExp(`127\\.0\\.0\\.1:${port}`) }, 'nothing listening');

  const emptyAuth = join(dir, 'empty-auth.json');
  writeFileSync(emptyAuth, '{"auths":{}}');
  await t.rejects(publish({ ...base, authFile: emptyAuth }), { code: 'REGISTRY_UNAUTHORIZED' }, 'htpasswd registry without credentials');

  const authFile = join(dir, 'auth.json');
  const auth = Buffer.from(`${reg.user!.username}:${reg.user!.password}`).toString('base64');
  writeFileSync(authFile, JSON.stringify({ auths: { [reg.host]: { auth } } }));
  const res = await publish({ ...base, authFile });
  t.equal(res.reference, `${reg.host}/machine/install:1.0.0`, 'with credentials the same publish succeeds');
});

t.test('a push refused half-way leaves no install tag, and the retry completes', { skip }, async (t) => {
  let allowInstallPush = false;
  // Token auth: `mos` is always writable; the install repository only once allowed.
  const grant = (scope: { name: string; actions: string[] }) => (scope.name === 'mos' || allowInstallPush ? scope.actions : ['pull']);
  const [images, project, reg] = await Promise.all([sharedImages(), sharedProject(), startRegistry(t, { auth: 'token', grant })]);
  const opts: PublishOptions = { manifestFile: 'm.yaml', yaml: manifestYaml(images), repo: reg.host, name: 'machine/install:1.0.0', project: 'snakeoil:default', dataHome: project.dataHome };

  const err = await publish(opts).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: /^REGISTRY_(DENIED|UNAUTHORIZED)$/, subject: /machine\/install/ }, 'the refused install push is reported');
  t.strictSame(await tagsWithToken(reg.host, 'machine/install'), [], 'no install tag after the failure');
  t.ok((await tagsWithToken(reg.host, 'mos')).includes(images.hostfs.digest.slice(7)), 'the images were copied before');
  allowInstallPush = true;
  const res = await publish(opts);
  const tags = await tagsWithToken(reg.host, 'machine/install');
  t.strictSame(tags.sort(), ['1.0.0', fallbackTag(res.digest)].sort(), 'the retry tags the artifact and indexes its referrers');
});

// Reads a tag list from a token-auth registry the way a client does (anonymous token, then the list).
async function tagsWithToken(host: string, name: string): Promise<string[]> {
  const challenge = await fetch(`http://${host}/v2/${name}/tags/list`);
  const header = challenge.headers.get('www-authenticate') ?? '';
  const realm = /realm="([^"]+)"/.exec(header)![1]!;
  const service = /service="([^"]+)"/.exec(header)![1]!;
  const { token } = await curlJson<{ token: string }>(`${realm}?service=${service}&scope=repository:${name}:pull`);
  const r = await fetch(`http://${host}/v2/${name}/tags/list`, { headers: { authorization: `Bearer ${token}` } });
  if (r.status === 404) return []; // NAME_UNKNOWN: the repository has nothing
  return ((await r.json()) as { tags: string[] }).tags;
}
