import { constants, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { MosError } from '../base/index.js';
import { EC_CURVE_HASH, MIN_RSA_BITS } from './constants.js';

/**
 * Signs `data` with a PEM private key (PKCS#8 or traditional) into the raw form
 * {@link verifyInstallSignature} accepts: RSA PKCS#1 v1.5 SHA-256 (byte-identical to
 * `openssl dgst -sha256 -sign`), ECDSA DER with SHA-256/384/512 by curve, Ed25519. Throws TRUST_KEY_INVALID.
 */
export function signBytes(privateKeyPem: string | Uint8Array, data: Uint8Array, subject = 'private key'): Uint8Array {
  const key = loadPrivateKey(privateKeyPem, subject);
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return new Uint8Array(cryptoSign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }));
    case 'ec':
      return new Uint8Array(cryptoSign(EC_CURVE_HASH[key.asymmetricKeyDetails!.namedCurve!]!, data, { key, dsaEncoding: 'der' }));
    default:
      return new Uint8Array(cryptoSign(null, data, key));
  }
}

/** Loads and checks a signing key: RSA >= 2048, EC P-256/P-384/P-521, or Ed25519. */
export function loadPrivateKey(privateKeyPem: string | Uint8Array, subject: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(privateKeyPem), format: 'pem' });
  } catch (e) {
    throw new MosError({ code: 'TRUST_KEY_INVALID', subject, message: 'not a PEM private key', hint: 'give a PKCS#8 PEM key (privkey.pem)', cause: e });
  }
  const t = key.asymmetricKeyType;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
  if (t === 'rsa' && bits >= MIN_RSA_BITS) return key;
  if (t === 'ec' && EC_CURVE_HASH[curve]) return key;
  if (t === 'ed25519') return key;
  const what = t === 'rsa' ? `RSA-${bits}` : t === 'ec' ? `EC ${curve}` : (t ?? 'unknown');
  throw new MosError({ code: 'TRUST_KEY_INVALID', subject, message: `${what} keys cannot sign install manifests`, hint: 'use RSA >= 2048, EC P-256/P-384/P-521 or Ed25519' });
}
