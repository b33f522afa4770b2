import { t } from 'tap';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRepository, OCI_MANIFEST } from '../../src/oci/index.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/env.js';
import { startFakeRegistry } from '../support/fake-registry.js';

// Operator finding 6: credentials as the container tools keep them. credHelpers (per registry) and
// credsStore (the default) name docker-credential-* programs; the helper here is a real program on
// PATH that speaks the protocol (server on stdin, JSON on stdout) and records what it was asked.
t.test('docker-credential helpers: credHelpers, credsStore, not found, missing, failing', async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const asked = join(dir, 'asked');
  // Knows one server; answers "not found" (exit 1) for any other, as docker's helpers do.
  const helper = (name: string, body: string) => {
    const f = join(bin, `docker-credential-${name}`);
    writeFileSync(f, `#!/bin/sh\n[ "$1" = get ] || exit 2\nread server\nprintf '%s\\n' "$server" >> '${asked}'\n${body}\n`);
    chmodSync(f, 0o755);
  };
  const fake = await startFakeRegistry(t, { basic: { username: 'robot', password: 's3cret-from-helper' } });
  helper('good', `[ "$server" = '${fake.host}' ] || { echo 'credentials not found in native keychain'; exit 1; }\necho '{"ServerURL":"${fake.host}","Username":"robot","Secret":"s3cret-from-helper"}'`);
  helper('wrong', `echo '{"ServerURL":"x","Username":"robot","Secret":"wrong-s3cret"}'`);
  helper('broken', `echo 'segfault' >&2; exit 3`);
  helper('nobody', `echo 'credentials not found in native keychain'; exit 1`);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 }, layers: [] }));
  fake.putManifest(OCI_MANIFEST, manifest, 'v1');
  fake.putBlob('{}');
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath}`;
  t.teardown(() => void (process.env.PATH = oldPath));
  const authFile = (doc: unknown) => {
    const f = join(dir, `auth-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };
  const resolve = (file: string) => openRepository({ host: fake.host, name: 'mos/x', authFile: file, retries: 0 }).resolve('v1');

  t.match(await resolve(authFile({ credHelpers: { [fake.host]: 'good' } })), { mediaType: OCI_MANIFEST }, 'credHelpers: the helper for this registry is asked');
  t.equal(readFileSync(asked, 'utf8'), `${fake.host}\n`, 'the helper got the registry on stdin');
  t.match(await resolve(authFile({ credsStore: 'good', auths: { [fake.host]: {} } })), { mediaType: OCI_MANIFEST }, 'credsStore: the default helper, auths holding only a placeholder');
  t.match(await resolve(authFile({ credHelpers: { [fake.host]: 'good' }, auths: { [fake.host]: { auth: Buffer.from('robot:stale').toString('base64') } } })), { mediaType: OCI_MANIFEST }, 'credHelpers wins over an auths entry');
  t.match(await resolve(authFile({ credsStore: 'wrong', auths: { [fake.host]: { auth: Buffer.from('robot:s3cret-from-helper').toString('base64') } } })), { mediaType: OCI_MANIFEST }, 'an auths entry wins over credsStore');

  const notFound = await resolve(authFile({ credHelpers: { 'other.example': 'good' }, credsStore: 'nobody' })).catch((e: Error) => e);
  t.match(notFound, { code: 'REGISTRY_UNAUTHORIZED' }, '"not found" from the helper: no credentials, and the registry refuses');
  const wrong = await resolve(authFile({ credHelpers: { [fake.host]: 'wrong' } })).catch((e: Error) => e);
  t.match(wrong, { code: 'REGISTRY_UNAUTHORIZED' }, 'a wrong secret from the helper: unauthorized');
  t.notMatch(JSON.stringify(wrong) + String(wrong), /wrong-s3cret/, 'the secret is in no error');
  const missing = await resolve(authFile({ credHelpers: { [fake.host]: 'absent' } })).catch((e: Error) => e);
  t.match(missing, { code: 'REGISTRY_UNAUTHORIZED', message: /docker-credential-absent is not installed/ });
  const broken = await resolve(authFile({ credHelpers: { [fake.host]: 'broken' } })).catch((e: Error) => e);
  t.match(broken, { code: 'REGISTRY_UNAUTHORIZED', message: /docker-credential-broken failed/ });
  const evil = await resolve(authFile({ credHelpers: { [fake.host]: '../../bin/sh' } })).catch((e: Error) => e);
  t.match(evil, { code: 'CONFIG_INVALID', message: /not a valid helper name/ }, 'a helper name is never a path');

  // The CLI: the auth file skopeo login would write, found through $REGISTRY_AUTH_FILE.
  const r = await runCli('mosb', ['--json', 'image', 'inspect', `${fake.host}/mos/x:v1`], { env: { PATH: `${bin}:${oldPath}`, REGISTRY_AUTH_FILE: authFile({ credHelpers: { [fake.host]: 'good' } }) } });
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout + r.stderr, /s3cret/, 'nothing secret printed');
});
