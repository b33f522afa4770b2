import { t } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { cliPath, runCli } from '../support/cli.js';
import { needs, tempDir } from '../support/env.js';
import { daysFromNow, mintPki } from '../support/pki.js';

const skip = needs({ programs: ['openssl'] });

t.test('mosctl verify: openssl-made chain accepted, each tampered variant rejected with exit 4 and a named check', { skip }, async (t) => {
  const pki = await mintPki(t, { intermediate: true, via: 'openssl' });
  const file = join(pki.dir, 'install.json');
  await writeFile(file, '{"version":1,"product":"cli","update_type":"complete","targets":[]}');
  const sig = await pki.sign(file);
  const base = ['--capath', pki.caCert, '--cert', pki.chainPem, '--signature', sig];

  const ok = await runCli('mosctl', ['verify', ...base, file]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /signed by "O=mosctl tests, CN=release signer"/);
  const js = await runCli('mosctl', ['--json', 'verify', ...base, file]);
  t.match(js.json, { verified: true, signer: { subject: 'O=mosctl tests, CN=release signer', keyType: 'rsa' } });
  t.equal((js.json as { signer: { chain: string[] } }).signer.chain.length, 3);

  const tampered = join(pki.dir, 'tampered.json');
  await writeFile(tampered, (await readFile(file, 'utf8')).replace('cli', 'clj'));
  const bad = await runCli('mosctl', ['--json', 'verify', ...base, tampered]);
  t.match(bad.json, { error: { code: 'TRUST_SIGNATURE_INVALID' } });
  t.equal(bad.code, 4);
  t.match(bad.stderr, /^mosctl: .*tampered\.json: signature does not match .*tampered\.json/m);

  const expired = await mintPki(t, { leafDates: { start: daysFromNow(-30), end: daysFromNow(-1) } });
  const expSig = await expired.sign(file, join(expired.dir, 'sig'));
  const exp = await runCli('mosctl', ['verify', '--capath', expired.caCert, '--cert', expired.leafCert, '--signature', expSig, file]);
  t.equal(exp.code, 4);
  t.match(exp.stderr, /signer certificate expired on \d{4}-\d\d-\d\dT/);

  const evil = await mintPki(t, { keySalt: 'evil' });
  const wrong = await runCli('mosctl', ['verify', '--capath', evil.caCert, '--cert', pki.chainPem, '--signature', sig, file]);
  t.equal(wrong.code, 4);
  t.match(wrong.stderr, /is not signed by/);

  const garbage = join(pki.dir, 'garbage.pem');
  await writeFile(garbage, 'not a pem');
  const g = await runCli('mosctl', ['verify', '--capath', garbage, '--cert', pki.chainPem, '--signature', sig, file]);
  t.equal(g.code, 3, 'unusable CA file: could not check (3), not rejected (4)');
  t.match(g.stderr, /garbage\.pem: no PEM block found/);

  // Default CA path under --root; missing → exit 6 naming it.
  const root = tempDir(t);
  const missing = await runCli('mosctl', ['--root', root, 'verify', '--cert', pki.chainPem, '--signature', sig, file]);
  t.equal(missing.code, 6);
  t.match(missing.stderr, /factory\/secure\/manifestCA\.pem: the manifest CA is missing/);
  await mkdir(join(root, 'factory/secure'), { recursive: true });
  await copyFile(pki.caCert, join(root, 'factory/secure/manifestCA.pem'));
  t.equal((await runCli('mosctl', ['--root', root, 'verify', '--cert', pki.chainPem, '--signature', sig, file])).code, 0);

  const usage = await runCli('mosctl', ['verify', '--capath', pki.caCert, file]);
  t.equal(usage.code, 2);
});

t.test('mosb keyset add / project add, then mosctl verify of an openssl signature made with the project key', { skip }, async (t) => {
  const env = { XDG_DATA_HOME: tempDir(t) };
  const ks = await runCli('mosb', ['--json', 'keyset', 'add', 'snakeoil'], { env });
  t.equal(ks.code, 0, ks.stderr);
  const pr = await runCli('mosb', ['--json', 'project', 'add', 'snakeoil:default'], { env });
  t.equal(pr.code, 0, pr.stderr);
  const paths = pr.json as { cert: string; key: string; caCert: string };
  t.match((await exec(['openssl', 'verify', '-CAfile', paths.caCert, paths.cert])).stdout, /OK/);
  const again = await runCli('mosb', ['keyset', 'add', 'snakeoil'], { env });
  t.equal(again.code, 8);
  t.match(again.stderr, /already exists/);
  t.equal((await runCli('mosb', ['project', 'add', 'nope:default'], { env })).code, 6);

  const file = join(env.XDG_DATA_HOME, 'install.json');
  await writeFile(file, '{}');
  await exec(['openssl', 'dgst', '-sha256', '-sign', paths.key, '-out', `${file}.signed`, file]);
  const v = await runCli('mosctl', ['verify', '--capath', paths.caCert, '--cert', paths.cert, '--signature', `${file}.signed`, file]);
  t.equal(v.code, 0, v.stderr);
  t.match(v.stdout, /CN=default/);
});

// "Could not check" has two causes that need different fixes: no CA file (6) and a CA we may not read (9).
t.test('mosctl verify: a missing CA is TRUST_CA_MISSING, an unreadable one HOST_PERMISSION', { skip: skip || needs({ root: true, programs: ['runuser'] }) }, async (t) => {
  const pki = await mintPki(t);
  const file = join(pki.dir, 'install.json');
  await writeFile(file, '{}');
  const sig = await pki.sign(file);
  const args = (capath: string) => ['--json', 'verify', '--capath', capath, '--cert', pki.leafCert, '--signature', sig, file];
  const notDir = await runCli('mosctl', args(join(file, 'ca.pem')));
  t.equal(notDir.code, 6, 'a parent that is a file is missing too');
  t.match(notDir.json, { error: { code: 'TRUST_CA_MISSING' } });

  const ca = join(pki.dir, 'private-ca.pem');
  await copyFile(pki.caCert, ca);
  await chmod(ca, 0o600);
  // As nobody (root reads everything); the other files stay world-readable.
  const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, cliPath('mosctl'), ...args(ca)], { encoding: 'utf8' });
  t.equal(r.status, 9, r.stderr);
  t.match(JSON.parse(r.stdout), { error: { code: 'HOST_PERMISSION', subject: ca, message: 'cannot read: permission denied' } });
  t.notMatch(r.stderr, /not found|missing/);
});
