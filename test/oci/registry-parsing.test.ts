import { t } from 'tap';
import { parseChallenges, resolvePlatform, fallbackTag, OCI_MANIFEST, OCI_INDEX } from '../../src/oci/index.js';
import { nextLink, retryAfterMs } from '../../src/oci/registry/headers.js';
import { credentialsFrom, defaultAuthFiles, searchCredentials } from '../../src/oci/registry/credentials.js';
import { mergeScopes } from '../../src/oci/registry/auth.js';
import { redactUrl, parseErrorBody } from '../../src/oci/registry/errors.js';
import { withDigest, rechunk } from '../../src/oci/registry/upload.js';

t.test('WWW-Authenticate: several challenges, quoted params with commas and escapes', async (t) => {
  const cases = [
    { in: 'Basic realm="mosctl-test"', want: [{ scheme: 'basic', params: { realm: 'mosctl-test' } }] },
    {
      in: 'Bearer realm="https://auth/token",service="svc",scope="repository:ns/repo:pull,push"',
      want: [{ scheme: 'bearer', params: { realm: 'https://auth/token', service: 'svc', scope: 'repository:ns/repo:pull,push' } }],
    },
    {
      in: 'Bearer realm="https://a/t",error="insufficient_scope",scope="repository:x:pull,push", Basic realm="r \\"q\\""',
      want: [
        { scheme: 'bearer', params: { realm: 'https://a/t', error: 'insufficient_scope', scope: 'repository:x:pull,push' } },
        { scheme: 'basic', params: { realm: 'r "q"' } },
      ],
    },
    { in: 'basic realm=plain, Negotiate', want: [{ scheme: 'basic', params: { realm: 'plain' } }, { scheme: 'negotiate', params: {} }] },
    { in: '', want: [] },
    { in: '===', want: [] },
  ];
  for (const c of cases) t.strictSame(parseChallenges(c.in), c.want, c.in);
});

t.test('Link, Retry-After, error bodies, URL redaction', async (t) => {
  t.equal(nextLink('</v2/x/referrers/d?n=2&last=b>; rel="next"'), '/v2/x/referrers/d?n=2&last=b');
  t.equal(nextLink('<https://a/1>; rel="prev", <https://a/3>; rel=next'), 'https://a/3');
  t.equal(nextLink('<https://a/1>; rel="prev"'), undefined);
  t.equal(retryAfterMs('3'), 3000);
  t.equal(retryAfterMs(new Date(10_000).toUTCString(), 4000), 6000);
  t.equal(retryAfterMs('soon'), undefined);
  t.strictSame(parseErrorBody('{"errors":[{"code":"DENIED","message":"no"}]}'), [{ code: 'DENIED', message: 'no' }]);
  t.strictSame(parseErrorBody('404 page not found'), []);
  t.equal(redactUrl('https://user:pw@h:1/v2/x/blobs/uploads/u?_state=SECRET'), 'https://h:1/v2/x/blobs/uploads/u?…');
});

t.test('credentials from docker config.json / containers auth.json', async (t) => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const doc = {
    auths: {
      'https://index.docker.io/v1/': { auth: b64('hub:hubpw') },
      'reg.io': { auth: b64('a:b:c') },
      'reg.io/team': { username: 'team', password: 'tpw' },
      'http://plain.io:5000': { username: 'p', password: 'q' },
      'broken.io': { auth: b64('nocolon') },
    },
  };
  t.strictSame(credentialsFrom(doc, 'docker.io', 'library/busybox', 'f'), { username: 'hub', password: 'hubpw' });
  t.strictSame(credentialsFrom(doc, 'reg.io', 'other/x', 'f'), { username: 'a', password: 'b:c' }, 'password may contain ":"');
  t.strictSame(credentialsFrom(doc, 'reg.io', 'team/app', 'f'), { username: 'team', password: 'tpw' }, 'most specific key wins');
  t.strictSame(credentialsFrom(doc, 'plain.io:5000', 'x', 'f'), { username: 'p', password: 'q' });
  t.equal(credentialsFrom(doc, 'none.io', 'x', 'f'), undefined);
  t.equal(credentialsFrom({}, 'reg.io', 'x', 'f'), undefined);
  const err = t.throws(() => credentialsFrom(doc, 'broken.io', 'x', 'auth.json'), { code: 'REGISTRY_UNAUTHORIZED', subject: 'auth.json: auths.broken.io' });
  t.notMatch(JSON.stringify(err), /nocolon/);
});

t.test('scopes, fallback tags, upload Locations, rechunk', async (t) => {
  t.strictSame(mergeScopes('repository:a:pull', 'repository:a:push repository:b:pull', undefined), ['repository:a:pull,push', 'repository:b:pull']);
  t.equal(fallbackTag(`sha256:${'ab'.repeat(32)}`), `sha256-${'ab'.repeat(32)}`);
  t.equal(fallbackTag(`sha512:${'c'.repeat(128)}`), `sha512-${'c'.repeat(64)}`);
  const d = `sha256:${'0'.repeat(64)}` as const;
  t.equal(withDigest('http://h/v2/x/blobs/uploads/u?_state=a%3D%3D', d), `http://h/v2/x/blobs/uploads/u?_state=a%3D%3D&digest=sha256%3A${'0'.repeat(64)}`);
  t.equal(withDigest('http://h/u', d), `http://h/u?digest=sha256%3A${'0'.repeat(64)}`);
  const out: number[] = [];
  for await (const c of rechunk((async function* () { yield new Uint8Array(5); yield new Uint8Array(7); yield new Uint8Array(0); yield new Uint8Array(4); })(), 6)) out.push(c.byteLength);
  t.strictSame(out, [6, 6, 4]);
});

t.test('resolvePlatform: first match, unknown media types skipped, clear error', async (t) => {
  const m = (arch: string, extra: Record<string, unknown> = {}, mediaType = OCI_MANIFEST) => ({ mediaType, digest: `sha256:${arch.padEnd(64, '0').slice(0, 64).replace(/[^a-f0-9]/g, 'a')}` as const, size: 1, platform: { os: 'linux', architecture: arch, ...extra } });
  const index = { schemaVersion: 2 as const, mediaType: OCI_INDEX, manifests: [m('amd64', {}, 'application/x-unknown'), m('arm', { variant: 'v6' }), m('arm', { variant: 'v7' }), m('amd64'), m('amd64')] };
  t.equal(resolvePlatform(index.manifests, { os: 'linux', architecture: 'amd64' }), index.manifests[3]);
  t.equal(resolvePlatform(index.manifests, { os: 'linux', architecture: 'arm', variant: 'v7' }), index.manifests[2]);
  t.equal(resolvePlatform(index.manifests, { os: 'linux', architecture: 'arm' }), index.manifests[1]);
  t.throws(() => resolvePlatform(index.manifests, { os: 'windows', architecture: 'amd64' }, 'idx'), { code: 'OCI_MANIFEST_UNKNOWN', subject: 'idx', message: /windows\/amd64.*linux\/arm\/v6, linux\/arm\/v7, linux\/amd64\)/ });
});

t.test("auth files are searched like the container tools: REGISTRY_AUTH_FILE alone, else XDG runtime, XDG config, docker, then the site bundle's", async (t) => {
  t.strictSame(defaultAuthFiles({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/0', HOME: '/root' }), ['/a.json']);
  t.strictSame(defaultAuthFiles({ XDG_RUNTIME_DIR: '/run/user/0', HOME: '/root' }), ['/run/user/0/containers/auth.json', '/root/.config/containers/auth.json', '/root/.docker/config.json', '/etc/mosctl/site/auth.json']);
  t.strictSame(defaultAuthFiles({ XDG_CONFIG_HOME: '/cfg', HOME: '/h' }), ['/cfg/containers/auth.json', '/h/.docker/config.json', '/etc/mosctl/site/auth.json']);
  const dir = t.testdir({
    'runtime.json': JSON.stringify({ auths: { 'reg.io': { auth: Buffer.from('skopeo:pw1').toString('base64') } } }),
    'docker.json': JSON.stringify({ auths: { 'reg.io': { auth: Buffer.from('docker:pw2').toString('base64') }, 'other.io': { username: 'o', password: 'p' } } }),
  });
  const files = [`${dir}/missing.json`, `${dir}/runtime.json`, `${dir}/docker.json`];
  t.strictSame(await searchCredentials(files, 'reg.io', 'x'), { username: 'skopeo', password: 'pw1' }, 'the first file with an entry wins');
  t.strictSame(await searchCredentials(files, 'other.io', 'x'), { username: 'o', password: 'p' }, 'later files are searched for other hosts');
  t.equal(await searchCredentials(files, 'none.io', 'x'), undefined);
});
