import { t } from 'tap';
import { connect } from 'node:tls';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { CLIENT_EXT, conformance, mintApiPki, testClient, type ApiPki, type CertFiles } from '../support/api.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { install, readAudit } from '../../src/machine/index.js';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { silentLogger } from '../../src/base/index.js';

// The upgrade API's authentication and authorization, with certificates made by openssl: who gets a
// TLS session at all (the handshake or the strict chain check refuses), and which role reaches which
// endpoint (every cell of the table asserted, every answer checked against openapi.json).
const skip = needs({ root: true, programs: ['openssl', 'mksquashfs'] });

t.test('upgrade API authentication and roles', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-api-auth-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const repo = `oci:${join(work, 'published')}`;
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo, name: 'machine/install:1.0', pki });
  const apps = await publishYaml({ dir: work, yaml: manifestYaml({ updateType: 'partial', targets: [T.extra(images)] }), repo, name: 'machine/install:extra', pki });
  const host11 = await publishYaml({ dir: work, yaml: manifestYaml({ updateType: 'partial', targets: [T.hostfs(images, '1.1')] }), repo, name: 'machine/install:host', pki });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference });

  const api: ApiPki = await mintApiPki(join(work, 'api'));
  const server: RunningServer = await startServer({
    root,
    port: 0,
    certFile: api.server.cert,
    keyFile: api.server.key,
    clientCaFile: api.clientCa,
    log: silentLogger,
  });
  t.teardown(() => server.close());

  const certs: Record<string, CertFiles> = {
    reader: await api.client('reader-1', { orgs: ['mos:reader'] }),
    apps: await api.client('apps-1', { orgs: ['mos:apps'] }),
    admin: await api.client('admin-1', { orgs: ['mos:admin'] }),
    norole: await api.client('nobody', { orgs: ['example:ops'] }),
    ouOnly: await api.client('ou-only', { ous: ['mos:admin'] }),
    twoRoles: await api.client('two-roles', { orgs: ['example', 'mos:reader', 'mos:apps'] }),
  };

  await t.test('certificates the TLS layer or the strict chain check refuses: no HTTP answer at all', async (t) => {
    const bad: Record<string, CertFiles | undefined> = {
      'no client certificate': undefined,
      'self-signed': await api.client('selfie', { orgs: ['mos:admin'], signer: 'self' }),
      'issued by a foreign CA': await api.client('foreigner', { orgs: ['mos:admin'], signer: 'foreign' }),
      expired: await api.client('old', { orgs: ['mos:admin'], startdate: '20200101000000Z', enddate: '20200201000000Z' }),
      'not yet valid': await api.client('future', { orgs: ['mos:admin'], startdate: '20990101000000Z', enddate: '20991231000000Z' }),
      'EKU serverAuth only': await api.client('server-eku', { orgs: ['mos:admin'], ext: ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth'] }),
      'CA:TRUE leaf': await api.client('ca-leaf', { orgs: ['mos:admin'], ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature,keyCertSign', 'extendedKeyUsage=clientAuth'] }),
    };
    for (const [what, cert] of Object.entries(bad)) {
      const c = testClient(t, server.url, api, cert);
      const r = await c.call('GET', '/v1/status').then(
        (a) => `HTTP ${a.status}`,
        (e: Error & { code?: string }) => `refused (${e.code ?? e.message})`,
      );
      t.match(r, /^refused/, `${what}: ${r}`);
      await c.close();
    }
    // A control: the same client code with a good certificate is answered.
    const ok = testClient(t, server.url, api, certs['reader']);
    t.equal((await ok.call('GET', '/v1/status')).status, 200, 'a valid reader certificate is answered');
  });

  await t.test('TLS 1.1 and older are refused; TLS 1.3 is negotiated', async (t) => {
    const proto = (opts: { maxVersion?: 'TLSv1.1'; minVersion?: 'TLSv1' }) =>
      new Promise<string>((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port: server.port,
          ca: readFileSync(api.serverCa),
          cert: readFileSync(certs['reader']!.cert),
          key: readFileSync(certs['reader']!.key),
          ...opts,
        });
        s.on('secureConnect', () => {
          resolve(s.getProtocol() ?? 'none');
          s.destroy();
        });
        s.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code ?? e.message}`));
      });
    t.equal(await proto({}), 'TLSv1.3');
    t.match(await proto({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), /^error/);
  });

  // The role table: what each role may do. "ok" = 2xx; otherwise the expected status.
  type Cell = 'ok' | 403 | 404 | 409 | 422;
  const TABLE: { name: string; method: 'GET' | 'POST'; path: string; body?: unknown; reader: Cell; apps: Cell; admin: Cell; norole: Cell }[] = [
    { name: 'status', method: 'GET', path: '/v1/status', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'generations', method: 'GET', path: '/v1/generations', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'whoami', method: 'GET', path: '/v1/whoami', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'openapi', method: 'GET', path: '/v1/openapi.json', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'operations list', method: 'GET', path: '/v1/operations', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'events', method: 'GET', path: '/v1/events?after=0', reader: 'ok', apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'plan apps-only manifest', method: 'POST', path: '/v1/plans', body: { source: apps.reference }, reader: 403, apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'plan hostfs manifest', method: 'POST', path: '/v1/plans', body: { source: host11.reference }, reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'operation on a hostfs manifest', method: 'POST', path: '/v1/operations', body: { source: host11.reference, mode: 'download' }, reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'activate fs-only target', method: 'POST', path: '/v1/targets/data/activate', reader: 403, apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'deactivate fs-only target', method: 'POST', path: '/v1/targets/data/deactivate', reader: 403, apps: 'ok', admin: 'ok', norole: 403 },
    { name: 'deactivate hostfs', method: 'POST', path: '/v1/targets/hostfs/deactivate', reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'gc (dry run)', method: 'POST', path: '/v1/gc', body: { dryRun: true }, reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'rollback (none to go to)', method: 'POST', path: '/v1/rollback', body: {}, reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'pin a generation', method: 'POST', path: '/v1/generations/1/pin', reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'unpin a generation', method: 'POST', path: '/v1/generations/1/unpin', reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'pin an unknown generation', method: 'POST', path: '/v1/generations/99/pin', reader: 403, apps: 403, admin: 404, norole: 403 },
    { name: 'audit log', method: 'GET', path: '/v1/audit', reader: 403, apps: 403, admin: 'ok', norole: 403 },
    { name: 'unknown operation', method: 'GET', path: '/v1/operations/00000000-0000-0000-0000-000000000000', reader: 404, apps: 404, admin: 404, norole: 403 },
    { name: 'cancel an unknown operation', method: 'POST', path: '/v1/operations/00000000-0000-0000-0000-000000000000/cancel', reader: 403, apps: 404, admin: 404, norole: 403 },
    { name: 'unknown plan', method: 'GET', path: '/v1/plans/00000000-0000-0000-0000-000000000000', reader: 403, apps: 404, admin: 404, norole: 403 },
    { name: 'download an apps-only manifest', method: 'POST', path: '/v1/operations', body: { source: apps.reference, mode: 'download' }, reader: 403, apps: 'ok', admin: 'ok', norole: 403 },
  ];
  await t.test('every role against every endpoint', async (t) => {
    for (const role of ['reader', 'apps', 'admin', 'norole'] as const) {
      const c = testClient(t, server.url, api, certs[role]);
      for (const row of TABLE) {
        const a = await c.call(row.method, row.path, row.body);
        const want = row[role];
        const got = a.status >= 200 && a.status < 300 ? 'ok' : a.status;
        t.equal(got, want, `${role} × ${row.name}: ${a.status}${a.status >= 300 ? ' ' + a.text.slice(0, 160) : ''}`);
        t.same(conformance(row.method, row.path, a), [], `${role} × ${row.name}: the answer matches openapi.json`);
        if (a.status === 403) t.match(a.json, { error: { code: 'API_FORBIDDEN', retryable: false } });
        // Operations started by the table finish before the next row (one mutating operation at a time).
        const id = (a.json as { id?: string; phase?: string } | undefined)?.id;
        if (a.status === 202 && id) await server.engine.idle();
      }
    }
  });

  await t.test('the role is the highest O= value; OU= is not a role', async (t) => {
    const two = testClient(t, server.url, api, certs['twoRoles']);
    t.match((await two.call('GET', '/v1/whoami')).json, { role: 'mos:apps', subject: /CN=two-roles/ });
    const ou = testClient(t, server.url, api, certs['ouOnly']);
    t.equal((await ou.call('GET', '/v1/status')).status, 403, 'OU=mos:admin gives no role');
  });

  await t.test('every POST is in the audit log with subject, fingerprint, role and result', async (t) => {
    const entries = await readAudit(root);
    const posts = TABLE.filter((r) => r.method === 'POST').length * 3; // reader, apps, admin (norole is refused before a role exists)
    t.ok(entries.length >= posts, `${entries.length} entries for ${posts} role-bearing POSTs`);
    const fp = (f: CertFiles) => {
      const der = Buffer.from(readFileSync(f.cert, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
      return createHash('sha256').update(der).digest('hex');
    };
    const readerEntries = entries.filter((e) => e.role === 'mos:reader');
    t.ok(readerEntries.length > 0 && readerEntries.every((e) => e.status === 403 && e.error === 'API_FORBIDDEN'), 'the reader’s refused POSTs are recorded as refused');
    t.ok(entries.every((e) => /^[0-9a-f]{64}$/.test(e.fingerprint)), 'fingerprints are SHA-256 hex');
    t.ok(entries.some((e) => e.fingerprint === fp(certs['admin']!) && e.status === 202 && e.operation), 'an accepted admin request names its operation');
    const admin = testClient(t, server.url, api, certs['admin']);
    const viaApi = await admin.call('GET', '/v1/audit');
    t.equal((viaApi.json as { entries: unknown[] }).entries.length, entries.length, 'the API serves the same log');
  });

  await t.test('a client certificate with extra CA:FALSE leaf extensions in any order is fine', async (t) => {
    const c = await api.client('ordered', { orgs: ['mos:reader'], ext: [...CLIENT_EXT].reverse() });
    t.equal((await testClient(t, server.url, api, c).call('GET', '/v1/status')).status, 200);
  });
});
