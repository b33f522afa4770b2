import { t, type Test } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';
import { MAX_PEM_BYTES, parseCaBundle, signBytes, verifyInstallSignature, type TrustAnchors } from '../../src/trust/index.js';
import { needs } from '../support/env.js';
import { DEFAULT_CA_EXT, DEFAULT_INTERMEDIATE_EXT, DEFAULT_LEAF_EXT, daysFromNow, mintPki, type KeyKind, type PkiOptions } from '../support/pki.js';

const skip = needs({ programs: ['openssl'] });
const INSTALL = Buffer.from('{"version":1,"product":"de0f2c1c-3a55-4f5e-9d3c-1f2e3d4c5b6a","update_type":"complete","targets":[]}');

async function fixture(t: Test, opts: PkiOptions = {}) {
  const pki = await mintPki(t, opts);
  const file = join(pki.dir, 'install.json');
  await writeFile(file, INSTALL);
  const sig = await pki.sign(file);
  const anchors: TrustAnchors = parseCaBundle(await readFile(pki.caCert), pki.caCert);
  return { pki, file, sig, anchors, signature: await readFile(sig), certPem: await readFile(pki.chainPem) };
}

t.test('openssl-made keys, certs and signatures verify with ours', { skip }, async (t) => {
  const kinds: KeyKind[] = ['rsa3072', 'ec256', 'ec384', 'ed25519'];
  for (const leafKey of kinds) {
    const f = await fixture(t, { leafKey, via: 'openssl' });
    t.equal(f.pki.via, 'openssl');
    const info = verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: f.anchors });
    t.equal(info.subject, 'O=mosctl tests, CN=release signer', `${leafKey}: subject`);
    t.same(info.san, ['email:release@example.test'], `${leafKey}: san`);
    t.equal(info.keyType, leafKey.startsWith('rsa') ? 'rsa' : leafKey.startsWith('ec') ? 'ec' : 'ed25519');
    t.same(info.chain, ['O=mosctl tests, CN=release signer', 'O=mosctl tests, CN=mosctl test CA']);
  }
});

t.test('an intermediate after the leaf in the cert PEM completes the path; EC CA', { skip }, async (t) => {
  const f = await fixture(t, { intermediate: true, caKey: 'ec384', leafKey: 'ec256', via: 'openssl' });
  const info = verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: f.anchors });
  t.equal(info.chain.length, 3);
  t.match(info.chain[1], /intermediate/);
  // Without the intermediate the leaf's issuer is unknown.
  t.throws(() => verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: readFileSync(f.pki.leafCert, 'utf8'), anchors: f.anchors }), {
    code: 'TRUST_CERT_UNTRUSTED',
    message: /does not chain to a trusted manifest CA/,
  });
});


t.test('our signatures verify with openssl dgst, our keys and certs with openssl verify', { skip }, async (t) => {
  for (const leafKey of ['rsa3072', 'ec256', 'ec384', 'ed25519'] as const) {
    const f = await fixture(t, { leafKey });
    const ours = join(f.pki.dir, 'ours.sig');
    await writeFile(ours, signBytes(await readFile(f.pki.leafKey), INSTALL));
    const pub = join(f.pki.dir, 'leaf.pub');
    await exec(['openssl', 'x509', '-in', f.pki.leafCert, '-pubkey', '-noout', '-out', pub]);
    const argv =
      leafKey === 'ed25519'
        ? ['openssl', 'pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', pub, '-in', f.file, '-sigfile', ours]
        : ['openssl', 'dgst', leafKey === 'ec384' ? '-sha384' : '-sha256', '-verify', pub, '-signature', ours, f.file];
    const r = await exec(argv);
    t.match(r.stdout, /Verified OK|Signature Verified Successfully/, `${leafKey}: openssl accepts our signature`);
    if (leafKey === 'rsa3072') {
      t.same(Buffer.from(signBytes(await readFile(f.pki.leafKey), INSTALL)), f.signature, 'RSA PKCS#1 v1.5 is byte-identical to openssl dgst');
    }
    const v = await exec(['openssl', 'verify', '-CAfile', f.pki.caCert, '-purpose', 'any', f.pki.leafCert]);
    t.match(v.stdout, /OK/);
  }
});

// The in-process PKI (the default of mintPki) against `openssl ca` on the same keys, dates and
// serials: RSA and Ed25519 certificates come out byte-identical, ECDSA ones (randomised signatures)
// with an identical to-be-signed part. So a bad cert built in-process is the one openssl would make.
const SAME_DATES = { start: new Date('2025-03-01T10:00:00Z'), end: new Date('2027-03-01T10:00:00Z') };
const crossChecked: { name: string; pki: PkiOptions }[] = [
  { name: 'defaults', pki: {} },
  { name: 'intermediate, RSA-2048 leaf', pki: { intermediate: true, leafKey: 'rsa2048' } },
  { name: 'EC P-384 CA, EC P-256 leaf, intermediate', pki: { intermediate: true, caKey: 'ec384', leafKey: 'ec256' } },
  { name: 'Ed25519 leaf', pki: { leafKey: 'ed25519' } },
  { name: 'RSA-1024 leaf', pki: { leafKey: 'rsa1024' } },
  { name: 'SHA-1 signed leaf', pki: { leafMd: 'sha1' } },
  { name: 'CA without subjectKeyIdentifier, cRLSign+digitalSignature', pki: { caExt: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,cRLSign,digitalSignature'] } },
  { name: 'intermediate CA:FALSE without key identifiers', pki: { intermediate: true, intermediateExt: ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature'] } },
  { name: 'unknown critical extensions', pki: { caExt: [...DEFAULT_CA_EXT, '1.3.6.1.4.1.55555.2=critical,DER:05:00'], leafExt: [...DEFAULT_LEAF_EXT, '1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:x'] } },
  { name: 'EKU serverAuth, pathlen, dates past 2049', pki: { caExt: ['basicConstraints=critical,CA:TRUE,pathlen:1', 'keyUsage=critical,keyCertSign'], leafExt: DEFAULT_LEAF_EXT.map((l) => (l.startsWith('extendedKeyUsage') ? 'extendedKeyUsage=critical,serverAuth,timeStamping' : l)), caDates: { start: SAME_DATES.start, end: new Date('2061-01-01T00:00:00Z') } } },
];

/** The tbsCertificate element of a certificate's DER (the first element of the outer SEQUENCE). */
function tbsOf(der: Buffer): Buffer {
  const len = (at: number): [number, number] => {
    const b = der[at + 1]!;
    if (b < 0x80) return [b, at + 2];
    let n = 0;
    for (let i = 0; i < (b & 0x7f); i++) n = n * 256 + der[at + 2 + i]!;
    return [n, at + 2 + (b & 0x7f)];
  };
  const [, inner] = len(0);
  const [tbsLen, tbsBody] = len(inner);
  return der.subarray(inner, tbsBody + tbsLen);
}

t.test('in-process certificates are the ones openssl ca makes from the same keys', { skip }, async (t) => {
  for (const c of crossChecked) {
    const opts: PkiOptions = { caDates: SAME_DATES, intermediateDates: SAME_DATES, leafDates: SAME_DATES, ...c.pki, keySalt: 'cross-check' };
    const ours = await mintPki(t, opts);
    const theirs = await mintPki(t, { ...opts, via: 'openssl' });
    t.equal(ours.via, 'node', `${c.name}: built in-process`);
    for (const k of ['caCert', 'intermediateCert', 'leafCert'] as const) {
      if (!ours[k]) continue;
      const a = await readFile(ours[k]!, 'utf8');
      const b = await readFile(theirs[k]!, 'utf8');
      // Every certificate here is signed by a CA key; ECDSA signatures differ run to run.
      if (!(c.pki.caKey ?? 'rsa3072').startsWith('ec')) t.equal(a, b, `${c.name}: ${k} byte-identical`);
      else t.same(tbsOf(new X509Certificate(a).raw), tbsOf(new X509Certificate(b).raw), `${c.name}: ${k} to-be-signed part identical`);
    }
  }
  // What the in-process path does not build goes to openssl.
  t.equal((await mintPki(t, { caExt: [...DEFAULT_CA_EXT, 'nameConstraints=critical,permitted;email:example.test'] })).via, 'openssl', 'nameConstraints: made by openssl');
});

const future = { start: daysFromNow(10), end: daysFromNow(400) };
const past = { start: daysFromNow(-400), end: daysFromNow(-10) };
const withoutKu = (ext: readonly string[]) => ext.filter((l) => !l.startsWith('keyUsage'));

interface Case {
  readonly name: string;
  readonly pki: PkiOptions;
  readonly code: string;
  readonly message: RegExp;
  /** openssl verify's verdict: the independent oracle agrees it is bad (undefined: openssl has no such rule). */
  readonly opensslRejects?: boolean;
}
const cases: Case[] = [
  { name: 'expired leaf', pki: { leafDates: past }, code: 'TRUST_CERT_EXPIRED', message: /signer certificate expired on \d{4}-\d\d-\d\d/, opensslRejects: true },
  { name: 'not-yet-valid leaf', pki: { leafDates: future }, code: 'TRUST_CERT_NOT_YET_VALID', message: /signer certificate is not valid before/, opensslRejects: true },
  { name: 'expired CA', pki: { caDates: past, leafDates: past }, code: 'TRUST_CERT_EXPIRED', message: /certificate expired on/, opensslRejects: true },
  { name: 'expired CA, leaf still valid', pki: { caDates: { start: daysFromNow(-400), end: daysFromNow(-1) } }, code: 'TRUST_CERT_EXPIRED', message: /CA certificate expired on/, opensslRejects: true },
  { name: 'not-yet-valid CA', pki: { caDates: future }, code: 'TRUST_CERT_NOT_YET_VALID', message: /CA certificate is not valid before/, opensslRejects: true },
  { name: 'issuer without CA flag', pki: { caExt: ['basicConstraints=critical,CA:FALSE', 'subjectKeyIdentifier=hash'] }, code: 'TRUST_CERT_INVALID', message: /issuer is not a CA/, opensslRejects: true },
  { name: 'issuer without basicConstraints', pki: { caExt: ['subjectKeyIdentifier=hash'] }, code: 'TRUST_CERT_INVALID', message: /issuer is not a CA/, opensslRejects: true },
  {
    name: 'pathLen exceeded',
    pki: { intermediate: true, caExt: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign', 'subjectKeyIdentifier=hash'] },
    code: 'TRUST_CERT_INVALID',
    message: /path length constraint exceeded/,
    opensslRejects: true,
  },
  {
    name: 'intermediate without CA flag',
    pki: { intermediate: true, intermediateExt: ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature'] },
    code: 'TRUST_CERT_INVALID',
    message: /issuer is not a CA/,
    opensslRejects: true,
  },
  { name: 'issuer key usage without keyCertSign', pki: { caExt: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,cRLSign,digitalSignature'] }, code: 'TRUST_CERT_INVALID', message: /lacks keyCertSign/, opensslRejects: true },
  { name: 'leaf key usage without digitalSignature', pki: { leafExt: [...withoutKu(DEFAULT_LEAF_EXT), 'keyUsage=critical,keyAgreement'] }, code: 'TRUST_CERT_INVALID', message: /lacks digitalSignature/ },
  {
    name: 'leaf EKU serverAuth only',
    pki: { leafExt: DEFAULT_LEAF_EXT.map((l) => (l.startsWith('extendedKeyUsage') ? 'extendedKeyUsage=serverAuth' : l)) },
    code: 'TRUST_CERT_INVALID',
    message: /extended key usage does not allow code signing/,
  },
  { name: 'unknown critical extension on the leaf', pki: { leafExt: [...DEFAULT_LEAF_EXT, '1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:x'] }, code: 'TRUST_CERT_INVALID', message: /unknown critical extension 1\.3\.6\.1\.4\.1\.55555\.1/, opensslRejects: true },
  { name: 'unknown critical extension on the CA', pki: { caExt: [...DEFAULT_CA_EXT, '1.3.6.1.4.1.55555.2=critical,DER:05:00'] }, code: 'TRUST_CERT_INVALID', message: /CA certificate .* unknown critical extension/, opensslRejects: true },
  { name: 'critical name constraints (not enforced, so refused)', pki: { caExt: [...DEFAULT_CA_EXT, 'nameConstraints=critical,permitted;email:example.test'] }, code: 'TRUST_CERT_INVALID', message: /unknown critical extension 2\.5\.29\.30/ },
  { name: 'RSA-1024 leaf', pki: { leafKey: 'rsa1024' }, code: 'TRUST_WEAK_KEY', message: /RSA-1024 key, less than the 2048 bits/ },
  { name: 'RSA-1024 CA', pki: { caKey: 'rsa1024' }, code: 'TRUST_WEAK_KEY', message: /trusted CA .* RSA-1024/ },
  { name: 'SHA-1 signed leaf', pki: { leafMd: 'sha1' }, code: 'TRUST_WEAK_ALGORITHM', message: /sha1WithRSAEncryption: SHA-1 and MD5 are not accepted/ },
  { name: 'RSA-2048 leaf is fine', pki: { leafKey: 'rsa2048', intermediateExt: DEFAULT_INTERMEDIATE_EXT }, code: '', message: /./ },
];

for (const c of cases) {
  t.test(c.name, { skip }, async (t) => {
    const f = await fixture(t, c.pki);
    const run = () => verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: f.anchors, subject: f.file });
    if (c.code === '') {
      t.equal(run().keyType, 'rsa');
      return;
    }
    t.throws(run, { code: c.code, message: c.message, subject: 'signer certificate' });
    if (c.opensslRejects) {
      const untrusted = f.pki.intermediateCert ? ['-untrusted', f.pki.intermediateCert] : [];
      const r = await exec(['openssl', 'verify', '-purpose', 'any', '-CAfile', f.pki.caCert, ...untrusted, f.pki.leafCert], { okCodes: [0, 2] });
      t.not(r.code, 0, `openssl verify rejects it too: ${r.stdout.trim()} ${r.stderr.trim().split('\n')[0] ?? ''}`);
    }
  });
}

t.test('wrong CA: a same-name CA with another key', { skip }, async (t) => {
  const f = await fixture(t);
  const evil = await mintPki(t, { keySalt: 'evil' });
  const anchors = parseCaBundle(await readFile(evil.caCert), evil.caCert);
  t.throws(() => verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors }), {
    code: 'TRUST_CERT_UNTRUSTED',
    message: /is not signed by "O=mosctl tests, CN=mosctl test CA"/,
  });
  // A bundle holding both CAs finds the right one.
  const both = parseCaBundle((await readFile(evil.caCert, 'utf8')) + (await readFile(f.pki.caCert, 'utf8')), 'both.pem');
  t.equal(both.certs.length, 2);
  t.ok(verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: both }));
  // A CA with a different name: no issuer at all.
  const other = await mintPki(t, { keySalt: 'other', caCn: 'another CA' });
  const otherAnchors = parseCaBundle(await readFile(other.caCert), 'other.pem');
  t.throws(() => verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: otherAnchors }), {
    code: 'TRUST_CERT_UNTRUSTED',
    message: /does not chain to a trusted manifest CA: issuer "O=mosctl tests, CN=mosctl test CA" is not in other\.pem/,
  });
});

t.test('validity follows the injected clock', { skip }, async (t) => {
  const f = await fixture(t);
  const opts = { data: INSTALL, signature: f.signature, certPem: f.certPem, anchors: f.anchors };
  t.throws(() => verifyInstallSignature({ ...opts, now: daysFromNow(500) }), { code: 'TRUST_CERT_EXPIRED' });
  t.throws(() => verifyInstallSignature({ ...opts, now: daysFromNow(-5) }), { code: 'TRUST_CERT_NOT_YET_VALID' });
  t.ok(verifyInstallSignature({ ...opts, now: daysFromNow(100) }));
});

t.test('signature from another key, of other bytes, empty, oversized', { skip }, async (t) => {
  const f = await fixture(t);
  const other = await mintPki(t, { keySalt: 'other-leaf' });
  const base = { data: INSTALL, certPem: f.certPem, anchors: f.anchors };
  const bad = [
    { signature: signBytes(await readFile(other.leafKey), INSTALL), message: /^signature does not match install\.json/ },
    { signature: signBytes(await readFile(f.pki.leafKey), Buffer.from('{}')), message: /^signature does not match install\.json/ },
    { signature: new Uint8Array(0), message: /signature is empty/ },
    { signature: new Uint8Array(5000), message: /more than 4096/ },
  ];
  for (const b of bad) t.throws(() => verifyInstallSignature({ ...base, signature: b.signature }), { code: 'TRUST_SIGNATURE_INVALID', subject: 'install.json', message: b.message });
});

t.test('the signer certificate must not be a trusted CA itself', { skip }, async (t) => {
  const f = await fixture(t);
  const caSig = signBytes(await readFile(f.pki.caKey), INSTALL);
  const caPem = await readFile(f.pki.caCert);
  t.throws(() => verifyInstallSignature({ data: INSTALL, signature: caSig, certPem: caPem, anchors: f.anchors }), {
    code: 'TRUST_CERT_INVALID',
    message: /is itself a trusted CA/,
  });
});

t.test('CA bundle: garbage, empty, oversized, not a certificate', async (t) => {
  const cases: [string | Uint8Array, RegExp][] = [
    ['', /PEM file is empty/],
    ['hello world\n', /no PEM block found/],
    [new Uint8Array(MAX_PEM_BYTES + 1), /more than the 1048576 allowed/],
    ['-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n', /is not base64/],
    ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', /CA certificate 1 is malformed/],
    ['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', /no CERTIFICATE block found/],
    ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n', /ends with "END PRIVATE KEY"/],
  ];
  for (const [pem, message] of cases) t.throws(() => parseCaBundle(pem, '/f/manifestCA.pem'), { code: 'TRUST_PEM_INVALID', subject: '/f/manifestCA.pem', message });
});

t.test('signer PEM garbage is a rejection (TRUST_CERT_INVALID)', { skip }, async (t) => {
  const f = await fixture(t);
  for (const certPem of ['', 'junk', '-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n']) {
    t.throws(() => verifyInstallSignature({ data: INSTALL, signature: f.signature, certPem, anchors: f.anchors, certSubject: 'x.pem' }), { code: 'TRUST_CERT_INVALID', subject: 'x.pem' });
  }
});
