// @peculiar/x509 resolves its ASN.1 classes through tsyringe, which needs a Reflect metadata polyfill
// loaded first. This file is imported lazily (keyset creation only) so verification never loads either.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as never);

type Key = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;

/** RSA-3072 PKCS#1 v1.5 SHA-256: mos's key type (Go mos asserts an RSA signer key). */
const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 3072 } as const;

/** A key pair and certificate, as PEM. */
export interface BuiltCert {
  readonly certPem: string;
  readonly keyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function pkcs8Pem(key: Key): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
}

async function newKeys(modulusLength: number = RSA_ALG.modulusLength): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey({ ...RSA_ALG, modulusLength }, true, ['sign', 'verify'])) as KeyPair;
}

/** A self-signed CA certificate (CA:TRUE, critical) with the given key size, key usages and extensions. */
async function selfSignedCa(opts: { name: string; notBefore: Date; notAfter: Date }, bits: 2048 | 3072, usages: number, extra: x509.Extension[] = []): Promise<BuiltCert> {
  const alg = { ...RSA_ALG, modulusLength: bits };
  const keys = await newKeys(bits);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: opts.name,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    keys: keys as never,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      ...extra,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await pkcs8Pem(keys.privateKey) };
}

/** A self-signed manifest CA: RSA-3072, CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical). */
export async function buildCa(opts: { name: string; notBefore: Date; notAfter: Date }): Promise<BuiltCert> {
  return selfSignedCa(opts, 3072, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
}

async function importCaKey(caKeyPem: string): Promise<Key> {
  const caKeyDer = Buffer.from(caKeyPem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', caKeyDer, { name: RSA_ALG.name, hash: RSA_ALG.hash }, false, ['sign']);
}

/**
 * A signing cert issued by the CA: RSA-3072, CA:FALSE, digitalSignature, and one EKU: codeSigning (a
 * manifest key, the default) or mosctl's site-bundle OID (`eku`, a site key).
 */
export async function buildLeaf(opts: { name: string; notBefore: Date; notAfter: Date; caCertPem: string; caKeyPem: string; eku?: string }): Promise<BuiltCert> {
  const ca = new x509.X509Certificate(opts.caCertPem);
  const caKey = await importCaKey(opts.caKeyPem);
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.name,
    issuer: ca.subjectName, // the CA's own DER: chains are built on byte equality of names
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    publicKey: keys.publicKey as never,
    signingKey: caKey as never,
    signingAlgorithm: RSA_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([opts.eku ?? x509.ExtendedKeyUsage.codeSigning]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await pkcs8Pem(keys.privateKey) };
}

/**
 * A cross-certificate: `subjectCaPem`'s name and public key, issued (CA:TRUE, keyCertSign) by the CA
 * `issuerCertPem`/`issuerKeyPem`. A machine that trusts only the issuer then accepts signers under the
 * subject CA when this certificate follows their leaf: how a manifest CA is rotated without re-imaging.
 */
export async function buildCrossCert(opts: { subjectCaPem: string; issuerCertPem: string; issuerKeyPem: string; notBefore: Date; notAfter: Date }): Promise<string> {
  const subject = new x509.X509Certificate(opts.subjectCaPem);
  const issuer = new x509.X509Certificate(opts.issuerCertPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subject.subjectName,
    issuer: issuer.subjectName,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    publicKey: subject.publicKey,
    signingKey: (await importCaKey(opts.issuerKeyPem)) as never,
    signingAlgorithm: RSA_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(subject.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return cert.toString('pem') + '\n';
}

/**
 * A self-signed UEFI Secure Boot certificate (PK, KEK or db), as mos's keysets have them: RSA-2048 (the
 * size the UEFI specification requires firmware to support), SHA-256, CA:TRUE, keyUsage digitalSignature
 * + keyCertSign, and for a `db` key EKU codeSigning (it signs EFI executables with sbsign).
 */
export async function buildUefiCert(opts: { name: string; notBefore: Date; notAfter: Date; codeSigning?: boolean }): Promise<BuiltCert> {
  return selfSignedCa(opts, 2048, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
    opts.codeSigning ? [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning])] : []);
}
