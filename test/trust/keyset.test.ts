import { t } from 'tap';
import { readFile, stat, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { createKeyset, createProject, parseProjectSpec, projectPaths } from '../../src/build/index.js';
import { parseCaBundle, signBytes, verifyInstallSignature } from '../../src/trust/index.js';
import { needs, tempDir } from '../support/env.js';

const skip = needs({ programs: ['openssl'] });

t.test('keyset + project: openssl verify accepts, keys are 0600, our verify accepts their signatures', { skip }, async (t) => {
  const dataHome = tempDir(t);
  const ks = await createKeyset({ name: 'snakeoil', dataHome });
  t.equal(ks.caCert, join(dataHome, 'machine/trust/keys/snakeoil/manifest-ca/cert.pem'));
  const p = await createProject({ keyset: 'snakeoil', project: 'default', dataHome });
  t.same(p, projectPaths({ keyset: 'snakeoil', project: 'default', dataHome }));
  t.equal(p.dir, join(dataHome, 'machine/trust/keys/snakeoil/manifest/default'));
  for (const key of [ks.caKey, p.key]) t.equal((await stat(key)).mode & 0o777, 0o600, `${key} is 0600`);
  t.match(await readFile(p.uuid, 'utf8'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.match(await readFile(p.key, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8');

  const strict = await exec(['openssl', 'verify', '-CAfile', ks.caCert, '-purpose', 'any', '-x509_strict', p.cert]);
  t.match(strict.stdout, /: OK/);
  const text = (await exec(['openssl', 'x509', '-in', p.cert, '-noout', '-text'])).stdout;
  t.match(text, /Code Signing/);
  t.match(text, /Digital Signature/);
  t.match(text, /CA:FALSE/);
  t.match(text, /Public-Key: \(3072 bit\)/);
  t.match((await exec(['openssl', 'x509', '-in', ks.caCert, '-noout', '-text'])).stdout, /CA:TRUE/);

  // mos's signing flow with the project key: openssl dgst -sha256 -sign, verified by ours.
  const file = join(dataHome, 'install.json');
  await writeFile(file, '{"version":1}');
  await exec(['openssl', 'dgst', '-sha256', '-sign', p.key, '-out', `${file}.signed`, file]);
  const info = verifyInstallSignature({
    data: await readFile(file),
    signature: await readFile(`${file}.signed`),
    certPem: await readFile(p.cert),
    anchors: parseCaBundle(await readFile(ks.caCert), ks.caCert),
  });
  t.equal(info.subject, 'O=mosctl keyset snakeoil, CN=default');
  t.same(Buffer.from(signBytes(await readFile(p.key), await readFile(file))), await readFile(`${file}.signed`));

  // Re-running refuses and changes nothing.
  const before = await readFile(ks.caKey);
  await t.rejects(createKeyset({ name: 'snakeoil', dataHome }), { code: 'ALREADY_EXISTS' });
  await t.rejects(createProject({ keyset: 'snakeoil', project: 'default', dataHome }), { code: 'ALREADY_EXISTS' });
  t.same(await readFile(ks.caKey), before);
  t.same((await readdir(join(dataHome, 'machine/trust/keys'))).sort(), ['snakeoil'], 'no stray temp dirs');
});

t.test('bad names and unknown keysets', async (t) => {
  const dataHome = tempDir(t);
  for (const spec of ['nocolon', 'a:b:c', ':p', 'k:', '../x:p', 'k:../p', 'k:p/q']) t.throws(() => parseProjectSpec(spec), { code: 'INPUT_INVALID' }, spec);
  t.same(parseProjectSpec('snakeoil:default'), { keyset: 'snakeoil', project: 'default' });
  await t.rejects(createKeyset({ name: '..', dataHome }), { code: 'INPUT_INVALID' });
  await t.rejects(createProject({ keyset: 'nope', project: 'p', dataHome }), { code: 'TRUST_KEYSET_UNKNOWN', message: /no readable manifest CA/ });
  t.same(await readdir(dataHome), [], 'nothing written');
});
