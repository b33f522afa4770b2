import { t } from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { childEnv, cliPath, plainNode, runCli } from '../support/cli.js';
import { mintApiPki, testClient } from '../support/api.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { install } from '../../src/machine/index.js';

// Running the API as a daemon: the systemd units it prints, socket activation (a listening socket
// inherited as fd 3, as systemd hands it over), JSON logs on stderr, SIGTERM ending it cleanly, and a
// missing server certificate refused with one clear line before anything listens.
const skip = needs({ root: true, programs: ['openssl', 'mksquashfs'] });

t.test('mosctl serve as a daemon', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-api-daemon-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const v1 = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images)] }), repo: `oci:${join(work, 'pub')}`, name: 'machine/install:1', pki });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference });
  const api = await mintApiPki(join(work, 'api'));
  const reader = await api.client('reader', { orgs: ['mos:reader'] });

  await t.test('--systemd-unit and --systemd-socket print units for this command line', async (t) => {
    const unit = await runCli('mosctl', ['--root', root, 'serve', '--systemd-unit', '--client-ca', api.clientCa]);
    t.equal(unit.code, 0, unit.stderr);
    t.match(unit.stdout, /^\[Unit\]\n/);
    t.match(unit.stdout, new RegExp(`\\nExecStart=mosctl serve --root ${root} --client-ca ${api.clientCa} --listen-fd 3\\n`));
    t.match(unit.stdout, /\nRequires=mosctl-api\.socket\n/);
    const sock = await runCli('mosctl', ['--root', root, 'serve', '--systemd-socket', '--listen', '0.0.0.0:8443']);
    t.match(sock.stdout, /\[Socket\]\nListenStream=0\.0\.0\.0:8443\n/);
    const bad = await runCli('mosctl', ['--root', root, 'serve', '--listen', 'nowhere']);
    t.equal(bad.code, 2);
    t.match(bad.stderr, /--listen nowhere: must be HOST:PORT/);
  });

  await t.test('a missing server certificate: one clear line, nothing listens', async (t) => {
    const r = await runCli('mosctl', ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--client-ca', api.clientCa]);
    t.equal(r.code, 6, r.stderr);
    t.match(r.stderr, /factory\/secure\/api\/cert\.pem: the API server certificate is missing/);
  });

  await t.test('socket activation: the server answers on an inherited listening socket and stops on SIGTERM', async (t) => {
    const listener: Server = createServer();
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const port = (listener.address() as { port: number }).port;
    const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    const [cmd, argv] = plainNode([cliPath('mosctl'), '--root', root, 'serve', '--listen-fd', '3', '--tls-cert', api.server.cert, '--tls-key', api.server.key, '--client-ca', api.clientCa]);
    const child = spawn(cmd, argv, { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe', fd] });
    let log = '';
    child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const exited = once(child, 'exit');
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    // The parent stops accepting on its copy: only the child serves the socket from here on.
    listener.close();
    for (let i = 0; i < 200 && !log.includes('serving the upgrade API'); i++) await new Promise((r) => setTimeout(r, 50));
    t.match(log, /"msg":"serving the upgrade API".*"via":"fd 3"/);
    const c = testClient(t, `https://127.0.0.1:${port}`, api, reader);
    const a = await c.call('GET', '/v1/whoami');
    t.equal(a.status, 200, a.text);
    t.match(a.json, { role: 'mos:reader', subject: 'O=mos:reader, CN=reader' });
    await c.close();
    child.kill('SIGTERM');
    const [code] = await exited;
    t.equal(code, 0, 'SIGTERM ends it with exit 0');
    const lines = log.trim().split('\n');
    t.ok(lines.every((l) => JSON.parse(l) !== undefined), 'every log line is JSON');
    t.ok(lines.some((l) => /"msg":"request".*"path":"\/v1\/whoami".*"status":200/.test(l)), 'requests are logged');
    t.notMatch(log, /PRIVATE KEY/, 'no key material in the log');
  });
});
