import { t, type Test } from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCaBundle, verifySigstoreBundle, type VerifySigstoreBundleOptions } from '../../src/trust/index.js';
import { needs } from '../support/env.js';
import { daysFromNow, mintPki, mintTsa, DEFAULT_LEAF_EXT, type KeyKind, type Pki } from '../support/pki.js';

const skip = needs({ programs: ['openssl'] });
const INSTALL = Buffer.from('{"version":1,"product":"bundle-test","update_type":"complete","targets":[]}');
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

interface Made {
  pki: Pki;
  sig: Buffer;
  tsr: Buffer;
  leafDer: Buffer;
  bundle: Record<string, any>;
  opts: VerifySigstoreBundleOptions;
}

// A bundle the way a private-PKI signer makes one: a signature (openssl dgst with `via: 'openssl'`),
// an openssl ts timestamp over it.
async function make(t: Test, leafKey: KeyKind = 'ec256', leafExt?: string[], keySalt = '', via?: 'openssl'): Promise<Made> {
  const pki = await mintPki(t, { leafKey, keySalt, ...(leafExt ? { leafExt } : {}), ...(via ? { via } : {}) });
  const tsa = await mintTsa(t);
  const file = join(pki.dir, 'install.json');
  await writeFile(file, INSTALL);
  const sigFile = await pki.sign(file);
  const sig = await readFile(sigFile);
  const tsr = await tsa.stamp(sigFile);
  const leafDer = new X509Certificate(await readFile(pki.leafCert)).raw;
  const bundle = {
    mediaType: V03,
    verificationMaterial: {
      certificate: { rawBytes: b64(leafDer) },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [{ signedTimestamp: b64(tsr) }] },
    },
    messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: b64(createHash('sha256').update(INSTALL).digest()) }, signature: b64(sig) },
  };
  const opts = {
    data: INSTALL,
    bundle,
    anchors: parseCaBundle(await readFile(pki.caCert), pki.caCert),
    tsaAnchors: parseCaBundle(await readFile(tsa.chainPem), tsa.chainPem),
  };
  return { pki, sig, tsr, leafDer, bundle, opts };
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

t.test('certificate + private TSA timestamp verifies offline (EC and RSA leaves)', { skip }, async (t) => {
  for (const kind of ['ec256', 'rsa3072'] as const) {
    const m = await make(t, kind, undefined, '', 'openssl');
    const info = verifySigstoreBundle(m.opts);
    t.equal(info.subject, 'O=mosctl tests, CN=release signer');
    t.equal(info.keyType, kind === 'ec256' ? 'ec' : 'rsa');
    t.same(info.san, ['email:release@example.test']);
    // The chain is judged at the timestamp: a clock past the leaf's expiry still accepts it.
    t.ok(verifySigstoreBundle({ ...m.opts, now: daysFromNow(500) }), `${kind}: still valid after the leaf expired`);
  }
});

t.test('public-key mode: hint = SHA-256 of the signer certificate, our path validation decides', { skip }, async (t) => {
  const m = await make(t);
  const certPem = await readFile(m.pki.leafCert);
  const bundle = clone(m.bundle);
  const fp = createHash('sha256').update(m.leafDer).digest('hex');
  bundle.verificationMaterial = { publicKey: { hint: fp }, tlogEntries: [] };
  const opts = { data: INSTALL, bundle, anchors: m.opts.anchors, certPem };
  t.equal(verifySigstoreBundle(opts).keyType, 'ec');
  t.ok(verifySigstoreBundle({ ...opts, bundle: { ...bundle, verificationMaterial: { publicKey: { hint: `sha256:${fp}` }, tlogEntries: [] } } }));
  t.throws(() => verifySigstoreBundle({ ...opts, now: daysFromNow(500) }), { code: 'TRUST_CERT_EXPIRED', message: /expired on/ });
  const wrong = clone(bundle);
  wrong.verificationMaterial.publicKey.hint = 'ab'.repeat(32);
  t.throws(() => verifySigstoreBundle({ ...opts, bundle: wrong }), { code: 'TRUST_BUNDLE_INVALID', message: /hint .* is not the signer certificate's SHA-256 fingerprint/ });
  t.throws(() => verifySigstoreBundle({ data: INSTALL, bundle, anchors: m.opts.anchors }), { code: 'TRUST_BUNDLE_INVALID', message: /needs the signer certificate/ });
  const other = await mintPki(t, { keySalt: 'other' });
  const otherAnchors = parseCaBundle(await readFile(other.caCert), 'other.pem');
  t.throws(() => verifySigstoreBundle({ ...opts, anchors: otherAnchors }), { code: 'TRUST_CERT_UNTRUSTED' });
  const altered = Buffer.from(INSTALL);
  altered[3]! ^= 1;
  const resigned = clone(bundle);
  resigned.messageSignature.messageDigest.digest = b64(createHash('sha256').update(altered).digest());
  t.throws(() => verifySigstoreBundle({ ...opts, data: altered, bundle: resigned }), { code: 'TRUST_SIGNATURE_INVALID', message: /signature does not match install\.json/ });
});

t.test('altered bundles fail, each naming why', { skip }, async (t) => {
  const m = await make(t);
  const other = await make(t, 'ec256', undefined, 'other');
  const evil = await mintPki(t, { keySalt: 'evil' });
  const evilDer = new X509Certificate(await readFile(evil.leafCert)).raw;
  const altered = Buffer.from(INSTALL);
  altered[10]! ^= 1;
  type Mutation = { name: string; change: (b: Record<string, any>) => void; data?: Buffer; code: string; message: RegExp; opts?: Partial<VerifySigstoreBundleOptions> };
  const flipB64 = (s: string, i: number) => {
    const b = Buffer.from(s, 'base64');
    b[i]! ^= 1;
    return b64(b);
  };
  const cases: Mutation[] = [
    { name: 'artifact changed', change: () => {}, data: altered, code: 'TRUST_SIGNATURE_INVALID', message: /bundle message digest does not match install\.json/ },
    {
      name: 'artifact changed and digest recomputed',
      change: (b) => (b.messageSignature.messageDigest.digest = b64(createHash('sha256').update(altered).digest())),
      data: altered,
      code: 'TRUST_SIGNATURE_INVALID',
      message: /^signature does not match install\.json/,
    },
    { name: 'signature byte flipped', change: (b) => (b.messageSignature.signature = flipB64(b.messageSignature.signature, 20)), code: 'TRUST_BUNDLE_INVALID', message: /timestamp rejected/ },
    { name: "another signer's signature + its own timestamp", change: (b) => ((b.messageSignature.signature = b64(other.sig)), (b.verificationMaterial.timestampVerificationData.rfc3161Timestamps[0].signedTimestamp = b64(other.tsr))), code: 'TRUST_SIGNATURE_INVALID', message: /^signature does not match install\.json/ },
    { name: 'certificate from another CA', change: (b) => (b.verificationMaterial.certificate.rawBytes = b64(evilDer)), code: 'TRUST_CERT_UNTRUSTED', message: /is not signed by/ },
    { name: 'certificate byte flipped', change: (b) => (b.verificationMaterial.certificate.rawBytes = flipB64(b.verificationMaterial.certificate.rawBytes, 200)), code: 'TRUST_', message: /./ },
    // The signed TSTInfo's messageImprint (SHA-256 of the signature): a flip there breaks the TSA's signature.
    { name: 'timestamp imprint byte flipped', change: (b) => (b.verificationMaterial.timestampVerificationData.rfc3161Timestamps[0].signedTimestamp = flipB64(b64(m.tsr), m.tsr.indexOf(createHash('sha256').update(m.sig).digest()) + 5)), code: 'TRUST_BUNDLE_INVALID', message: /timestamp/ },
    { name: 'no timestamp', change: (b) => (b.verificationMaterial.timestampVerificationData.rfc3161Timestamps = []), code: 'TRUST_BUNDLE_INVALID', message: /has no RFC 3161 timestamp/ },
    { name: 'timestamp from an untrusted TSA', change: () => {}, opts: { tsaAnchors: other.opts.anchors }, code: 'TRUST_BUNDLE_INVALID', message: /timestamp rejected/ },
    { name: 'no TSA configured', change: () => {}, opts: { tsaAnchors: undefined as never }, code: 'TRUST_BUNDLE_INVALID', message: /needs a timestamp authority/ },
    { name: 'v0.2 media type', change: (b) => (b.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.2'), code: 'TRUST_BUNDLE_INVALID', message: /media type|not a Sigstore bundle/ },
    { name: 'tlog entry present', change: (b) => b.verificationMaterial.tlogEntries.push({ logIndex: '1', logId: { keyId: 'AA==' }, kindVersion: { kind: 'hashedrekord', version: '0.0.1' }, integratedTime: '1', inclusionPromise: { signedEntryTimestamp: 'AA==' }, inclusionProof: { logIndex: '1', rootHash: 'AA==', treeSize: '1', hashes: [], checkpoint: { envelope: 'x' } }, canonicalizedBody: 'AA==' }), code: 'TRUST_BUNDLE_INVALID', message: /transparency-log/ },
    { name: 'SHA3 message digest', change: (b) => (b.messageSignature.messageDigest.algorithm = 'SHA3_256'), code: 'TRUST_BUNDLE_INVALID', message: /messageDigest must be SHA2/ },
    { name: 'not a bundle', change: (b) => delete b.verificationMaterial, code: 'TRUST_BUNDLE_INVALID', message: /not a Sigstore bundle/ },
  ];
  for (const c of cases) {
    const bundle = clone(m.bundle);
    c.change(bundle);
    const err = t.throws(() => verifySigstoreBundle({ ...m.opts, ...c.opts, bundle, ...(c.data ? { data: c.data } : {}) }), { message: c.message }, c.name) as { code?: string } | undefined;
    t.ok(err?.code?.startsWith(c.code), `${c.name}: ${err?.code} is ${c.code}`);
  }
  t.throws(() => verifySigstoreBundle({ ...m.opts, bundle: 'junk' }), { code: 'TRUST_BUNDLE_INVALID' });
});

t.test('our policy runs on the bundle certificate too (sigstore does not check EKU)', { skip }, async (t) => {
  const m = await make(t, 'ec256', DEFAULT_LEAF_EXT.map((l) => (l.startsWith('extendedKeyUsage') ? 'extendedKeyUsage=serverAuth' : l)));
  t.throws(() => verifySigstoreBundle(m.opts), { code: 'TRUST_CERT_INVALID', message: /extended key usage does not allow code signing/ });
});
