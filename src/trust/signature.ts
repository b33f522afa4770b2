import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { MosError } from '../base/index.js';
import type { TrustAnchors } from './anchors.js';
import { keyTypeOf, parseCertificate, sanOf, type ParsedCert } from './cert.js';
import { EC_CURVE_HASH, MAX_CHAIN_CERTS, MAX_SIGNATURE_BYTES } from './constants.js';
import { validatePath } from './path.js';
import { decodeCertificates } from './pem.js';

/** Who signed, once every check passed. */
export interface SignerInfo {
  /** Subject DN of the signer certificate (`O=Example, CN=release`). */
  readonly subject: string;
  /** subjectAltName entries (`email:release@example.test`), when the certificate has them. */
  readonly san?: string[];
  readonly keyType: 'rsa' | 'ec' | 'ed25519';
  /** Subject DNs along the validated path, leaf first, trusted CA last. */
  readonly chain: string[];
  readonly notAfter: Date;
}

/** Inputs of {@link verifyInstallSignature}. */
export interface VerifyInstallSignatureOptions {
  /** The exact signed bytes (install.json as fetched, never re-serialized). */
  readonly data: Uint8Array;
  /** Raw signature bytes (mos's `.signed` file). */
  readonly signature: Uint8Array;
  /** Signer certificate PEM; intermediates may follow the leaf. */
  readonly certPem: string | Uint8Array;
  readonly anchors: TrustAnchors;
  /** Clock for validity checks; default now. */
  readonly now?: Date;
  /** Name of the signed file in messages; default `install.json`. */
  readonly subject?: string;
  /** Name of the certificate file in messages; default `signer certificate`. */
  readonly certSubject?: string;
}

/**
 * Verifies a mos-style detached signature: the signer certificate chains to `anchors` under our
 * path policy, then the raw signature over `data` verifies with its key (RSA PKCS#1 v1.5 SHA-256,
 * ECDSA DER with the curve's hash, Ed25519). Pure. Throws TRUST_* naming the failed check.
 */
export function verifyInstallSignature(opts: VerifyInstallSignatureOptions): SignerInfo {
  const dataName = opts.subject ?? 'install.json';
  const certName = opts.certSubject ?? 'signer certificate';
  const { leaf, path } = validateSignerPem(opts.certPem, certName, opts.anchors, opts.now ?? new Date());
  verifyRawSignature({ key: leaf.publicKey, data: opts.data, signature: opts.signature, subject: dataName });
  return signerInfo(path);
}

/** Parses a signer PEM (leaf, then optional intermediates) and validates its path at `at`. */
export function validateSignerPem(
  certPem: string | Uint8Array,
  subject: string,
  anchors: TrustAnchors,
  at: Date,
  purpose: 'codeSigning' | 'siteBundle' = 'codeSigning',
): { leaf: ParsedCert; path: ParsedCert[] } {
  const ders = decodeCertificates(certPem, subject, 'TRUST_CERT_INVALID');
  if (ders.length > MAX_CHAIN_CERTS) {
    throw new MosError({ code: 'TRUST_CERT_INVALID', subject, message: `${ders.length} certificates, more than the ${MAX_CHAIN_CERTS} allowed` });
  }
  const certs = ders.map((der, i) => parseCertificate(der, subject, 'TRUST_CERT_INVALID', i === 0 ? 'signer certificate' : `certificate ${i + 1}`));
  const [leaf, ...intermediates] = certs as [ParsedCert, ...ParsedCert[]];
  const path = validatePath({ leaf, intermediates, anchors, at, subject, purpose });
  return { leaf, path };
}

/** Builds the result from a validated path. */
export function signerInfo(path: readonly ParsedCert[]): SignerInfo {
  const leaf = path[0]!;
  const san = sanOf(leaf);
  return {
    subject: leaf.name,
    ...(san ? { san } : {}),
    keyType: keyTypeOf(leaf.publicKey)!,
    chain: path.map((c) => c.name),
    notAfter: leaf.notAfter,
  };
}

/**
 * Checks a raw signature over `data` with `key` in the one form accepted per key type; throws
 * TRUST_SIGNATURE_INVALID "signature does not match <subject>" otherwise.
 */
export function verifyRawSignature(opts: { key: KeyObject; data: Uint8Array; signature: Uint8Array; subject: string }): void {
  const { key, data, signature, subject } = opts;
  const reject = (detail?: string): MosError =>
    new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject,
      message: `signature does not match ${subject}${detail ? ` (${detail})` : ''}`,
      hint: 'the file or its signature was altered, or it was signed with another key',
    });
  if (signature.byteLength === 0) throw reject('signature is empty');
  if (signature.byteLength > MAX_SIGNATURE_BYTES) throw reject(`signature is ${signature.byteLength} bytes, more than ${MAX_SIGNATURE_BYTES}`);
  let ok: boolean;
  try {
    switch (keyTypeOf(key)) {
      case 'rsa':
        ok = cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
        break;
      case 'ec': {
        const hash = EC_CURVE_HASH[key.asymmetricKeyDetails?.namedCurve ?? ''];
        if (!hash) throw reject('unsupported EC curve');
        ok = cryptoVerify(hash, data, { key, dsaEncoding: 'der' }, signature);
        break;
      }
      case 'ed25519':
        ok = cryptoVerify(null, data, key, signature);
        break;
      default:
        throw reject(`unsupported ${key.asymmetricKeyType ?? 'unknown'} key`);
    }
  } catch (e) {
    if (e instanceof MosError) throw e;
    throw reject('malformed signature');
  }
  if (!ok) throw reject();
}
