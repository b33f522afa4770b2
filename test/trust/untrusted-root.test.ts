import { t } from 'tap';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { parseCaBundle, verifyInstallSignature } from '../../src/trust/index.js';
import { needs } from '../support/env.js';

// A chain that ends at a self-signed certificate which is not a trusted CA names that root, instead of
// "X is not signed by X" (hostile input #7). openssl makes the certificates, as a third party would.
t.test('a chain ending at an untrusted self-signed root names the root', { skip: needs({ programs: ['openssl'] }) }, async (t) => {
  const dir = t.testdir({});
  const selfSigned = async (name: string, extra: string[] = []) => {
    const key = join(dir, `${name}.key`);
    const cert = join(dir, `${name}.pem`);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await exec(['openssl', 'req', '-new', '-x509', '-key', key, '-out', cert, '-days', '30', '-subj', `/O=mosctl tests/CN=${name}`, ...extra]);
    return { key: privateKey, pem: await readFile(cert) };
  };
  const trusted = await selfSigned('trusted root', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  const rogue = await selfSigned('rogue signer', ['-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=codeSigning']);
  const data = new TextEncoder().encode('{"version":1}');
  const signature = sign('sha256', data, rogue.key);
  t.throws(
    () => verifyInstallSignature({ data, signature, certPem: rogue.pem, anchors: parseCaBundle(trusted.pem, 'ca.pem') }),
    { code: 'TRUST_CERT_UNTRUSTED', message: /chain ends at the untrusted root "O=mosctl tests, CN=rogue signer"/ },
  );
});
