import { t } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../support/cli.js';
import { needs, tempDir } from '../support/env.js';
import { startFakeRegistry } from '../support/fake-registry.js';
import { mintPki } from '../support/pki.js';
import { treeHash } from '../support/tree.js';

// Hostile input #3: /dev/zero and a FIFO as every file argument of mosctl and mosb. Each must be refused
// at once (a FIFO is opened without waiting for a writer, a device is never read), naming the path and
// its kind, with a non-zero exit and nothing changed under --root. A command that hangs is killed by
// runCli's timeout and fails its check; the timeout is a hang guard, not a speed assertion.
const skip = needs({ programs: ['mkfifo'] });


t.test('/dev/zero and a FIFO as every file argument: refused at once, naming it, nothing written', { skip }, async (t) => {
  const dir = tempDir(t);
  const pki = await mintPki(t);
  const file = join(dir, 'install.json');
  writeFileSync(file, '{"version":1,"product":"p","update_type":"complete","targets":[]}');
  const sig = await pki.sign(file);
  const fifo = join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const root = join(dir, 'root');
  mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
  copyFileSync(pki.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
  const yaml = join(dir, 'manifest.yaml');
  copyFileSync(fileURLToPath(new URL('../../manifests/hostfs-only.yaml', import.meta.url)), yaml);
  // A registry that asks for credentials, so that the auth file is read.
  const fake = await startFakeRegistry(t, { basic: { username: 'u', password: 'p' } });
  const reg = `${fake.host}/machine/install:1`;
  // A keyset whose CA files are a FIFO and /dev/zero (mosb project add reads them).
  const data = join(dir, 'data');
  const ks = join(data, 'machine', 'trust', 'keys', 'ks', 'manifest-ca');
  mkdirSync(ks, { recursive: true });

  type Case = readonly [what: string, cli: 'mosctl' | 'mosb', args: (bad: string) => string[], setup?: (bad: string) => void];
  const cases: Case[] = [
    ['verify --capath', 'mosctl', (z) => ['verify', '--capath', z, '--cert', pki.leafCert, '--signature', sig, file]],
    ['verify FILE', 'mosctl', (z) => ['verify', '--capath', pki.caCert, '--cert', pki.leafCert, '--signature', sig, z]],
    ['verify --signature', 'mosctl', (z) => ['verify', '--capath', pki.caCert, '--cert', pki.leafCert, '--signature', z, file]],
    ['verify --cert', 'mosctl', (z) => ['verify', '--capath', pki.caCert, '--cert', z, '--signature', sig, file]],
    ['verify --bundle', 'mosctl', (z) => ['verify', '--capath', pki.caCert, '--bundle', z, file]],
    ['verify --tsa-chain', 'mosctl', (z) => ['verify', '--capath', pki.caCert, '--bundle', join(dir, 'empty.json'), '--tsa-chain', z, file]],
    ['install --capath', 'mosctl', (z) => ['--root', root, 'install', '--capath', z, reg]],
    ['install --registry-ca', 'mosctl', (z) => ['--root', root, 'install', '--registry-ca', z, reg]],
    ['install --authfile', 'mosctl', (z) => ['--root', root, 'install', '--authfile', z, reg]],
    ['status --server --cert', 'mosctl', (z) => ['status', '--server', 'https://127.0.0.1:9', '--cert', z, '--key', pki.leafKey, '--ca', pki.caCert]],
    ['status --server --key', 'mosctl', (z) => ['status', '--server', 'https://127.0.0.1:9', '--cert', pki.leafCert, '--key', z, '--ca', pki.caCert]],
    ['status --server --ca', 'mosctl', (z) => ['status', '--server', 'https://127.0.0.1:9', '--cert', pki.leafCert, '--key', pki.leafKey, '--ca', z]],
    ['serve --tls-cert', 'mosctl', (z) => ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--tls-cert', z, '--tls-key', pki.leafKey, '--client-ca', pki.caCert]],
    ['serve --tls-key', 'mosctl', (z) => ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--tls-cert', pki.leafCert, '--tls-key', z, '--client-ca', pki.caCert]],
    ['serve --client-ca', 'mosctl', (z) => ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--tls-cert', pki.leafCert, '--tls-key', pki.leafKey, '--client-ca', z]],
    ['manifest validate FILE', 'mosb', (z) => ['manifest', 'validate', z]],
    ['manifest publish FILE', 'mosb', (z) => ['manifest', 'publish', '--repo', `oci:${join(dir, 'pub')}`, '--name', 'x:1', '--cert', pki.leafCert, '--key', pki.leafKey, z]],
    ['manifest publish --cert', 'mosb', (z) => ['manifest', 'publish', '--repo', `oci:${join(dir, 'pub')}`, '--name', 'x:1', '--cert', z, '--key', pki.leafKey, yaml]],
    ['manifest publish --key', 'mosb', (z) => ['manifest', 'publish', '--repo', `oci:${join(dir, 'pub')}`, '--name', 'x:1', '--cert', pki.leafCert, '--key', z, yaml]],
    ['image inspect --authfile', 'mosb', (z) => ['image', 'inspect', '--authfile', z, reg]],
    ['image copy --registry-ca', 'mosb', (z) => ['image', 'copy', '--registry-ca', z, reg, `oci:${join(dir, 'copy')}:x`]],
    ['project add (the keyset CA)', 'mosb', () => ['project', 'add', 'ks:p'], (z) => {
      for (const f of ['cert.pem', 'privkey.pem']) {
        spawnSync('rm', ['-f', join(ks, f)]);
        symlinkSync(z, join(ks, f));
      }
    }],
  ];
  writeFileSync(join(dir, 'empty.json'), '{}');
  const before = [[...treeHash(root)], readdirSync(dir).sort()];
  for (const [name, z, kind] of [['/dev/zero', '/dev/zero', 'a character device'], ['a FIFO', fifo, 'a FIFO']] as const) {
    for (const [what, cli, args, setup] of cases) {
      setup?.(z);
      const r = await runCli(cli, args(z), { timeoutMs: 30_000, env: { XDG_DATA_HOME: data, REGISTRY_AUTH_FILE: join(dir, 'no-auth.json') } });
      const label = `${what} ${name}`;
      t.not(r.code, 0, `${label}: exit non-zero`, { diag: r.stderr });
      t.not(r.code, 137, `${label}: returned by itself (not killed after 30 s)`);
      t.match(r.stderr, `is not a regular file (${kind})`, `${label}: names the kind`);
      t.ok(r.stderr.includes(z) || r.stderr.includes(join(ks, 'cert.pem')) || r.stderr.includes(join(ks, 'privkey.pem')), `${label}: names the path`, { diag: r.stderr });
      t.equal(r.stderr.trim().split('\n').filter((l) => /^(mosctl|mosb):/.test(l)).length, 1, `${label}: one error line`, { diag: r.stderr });
    }
  }
  t.same([[...treeHash(root)], readdirSync(dir).sort()], before, 'nothing written under --root or beside the inputs');
  t.notOk(fake.requests.some((r) => r.method !== 'GET' && r.method !== 'HEAD'), 'nothing pushed');
});
