import { X509Certificate, constants, createPrivateKey, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { MosError } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import {
  MAX_PEM_BYTES, MAX_SIGNATURE_BYTES, parseCaBundle, signBytes, verifyInstallSignature,
  type TrustAnchors,
} from '../trust/index.js';
import { parseProjectSpec, projectPaths } from './keyset.js';

/** Where the signing key comes from: a keyset project, or explicit files. */
export type SignerSource =
  | { readonly kind: 'project'; readonly spec: string; readonly dataHome?: string }
  | { readonly kind: 'files'; readonly cert: string; readonly key: string };

/** Loaded signing material, checked to belong together. */
export interface Signer {
  readonly certPem: Uint8Array;
  readonly keyPem: Uint8Array;
  /** The keyset's manifest CA, when signing for a project whose CA is present. */
  readonly anchors?: TrustAnchors;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Reads the signer certificate and key (and a project's keyset CA) and checks that the certificate
 * holds the key's public half. Nothing is sent anywhere; a missing file is NOT_FOUND /
 * TRUST_KEYSET_UNKNOWN, a key that does not match TRUST_KEY_INVALID.
 */
export async function loadSigner(source: SignerSource): Promise<Signer> {
  let certFile: string;
  let keyFile: string;
  let caFile: string | undefined;
  if (source.kind === 'project') {
    const { keyset, project } = parseProjectSpec(source.spec);
    const paths = projectPaths({ keyset, project, ...(source.dataHome !== undefined ? { dataHome: source.dataHome } : {}) });
    certFile = paths.cert;
    keyFile = paths.key;
    caFile = paths.caCert;
  } else {
    certFile = source.cert;
    keyFile = source.key;
  }
  const spec = source.kind === 'project' ? source.spec : undefined;
  const keyPem = await readPem(keyFile, spec, 'signing key');
  const certPem = await readPem(certFile, spec, 'certificate');
  checkPair(certPem, keyPem, certFile, keyFile);
  let anchors: TrustAnchors | undefined;
  if (caFile !== undefined) {
    const ca = await readFileLimited(caFile, MAX_PEM_BYTES).catch((e: unknown) => {
      if (e instanceof MosError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    });
    if (ca !== undefined) anchors = parseCaBundle(ca, caFile);
  }
  return { certPem, keyPem, certFile, keyFile, ...(anchors ? { anchors } : {}) };
}

/**
 * Signs `data` and checks the result before anything is published: the signature verifies with the
 * certificate's key, and, for a project, the certificate chains to the keyset CA at `now`.
 */
export function signAndCheck(signer: Signer, data: Uint8Array, now: Date): Uint8Array {
  const signature = signBytes(signer.keyPem, data, signer.keyFile);
  if (!signatureMatches(signer.certPem, data, signature)) {
    throw new MosError({ code: 'TRUST_SIGNATURE_INVALID', subject: signer.certFile, message: 'the signature made with the key does not verify with this certificate', hint: 'give the certificate issued for this key' });
  }
  if (signer.anchors) {
    verifyInstallSignature({ data, signature, certPem: signer.certPem, anchors: signer.anchors, now, certSubject: signer.certFile });
  }
  return signature;
}

/** True when `signature` over `data` verifies with the public key of the first certificate in `certPem`. */
export function signatureMatches(certPem: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.byteLength === 0 || signature.byteLength > MAX_SIGNATURE_BYTES) return false;
  try {
    const key = new X509Certificate(certPem).publicKey;
    return verifyWith(key, data, signature);
  } catch {
    return false;
  }
}

// The one form per key type that trust.signBytes produces (RSA PKCS#1 v1.5, ECDSA DER, Ed25519).
function verifyWith(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    case 'ec': {
      const hash = { prime256v1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512' }[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return hash !== undefined && cryptoVerify(hash, data, { key, dsaEncoding: 'der' }, signature);
    }
    case 'ed25519':
      return cryptoVerify(null, data, key, signature);
    default:
      return false;
  }
}

// A project's missing file means the project does not exist (yet): say how to create it.
async function readPem(file: string, project: string | undefined, what: string): Promise<Buffer> {
  try {
    return await readFileLimited(file, MAX_PEM_BYTES);
  } catch (e) {
    if (project === undefined || !(e instanceof MosError) || e.code !== 'NOT_FOUND') throw e;
    throw new MosError({ code: 'TRUST_KEYSET_UNKNOWN', subject: file, message: `project ${project} has no ${what}`, hint: `create it with mosb project add ${project}, or pass --cert and --key`, cause: e });
  }
}

function checkPair(certPem: Uint8Array, keyPem: Uint8Array, certFile: string, keyFile: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new MosError({ code: 'TRUST_CERT_INVALID', subject: certFile, message: 'not a PEM X.509 certificate', hint: 'give the signer certificate (cert.pem)', cause: e });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(keyPem), format: 'pem' });
  } catch (e) {
    throw new MosError({ code: 'TRUST_KEY_INVALID', subject: keyFile, message: 'not a PEM private key', hint: 'give a PKCS#8 PEM key (privkey.pem)', cause: e });
  }
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(key)).equals(spki(cert.publicKey))) {
    throw new MosError({ code: 'TRUST_KEY_INVALID', subject: keyFile, message: `is not the key of the certificate ${certFile}`, hint: 'give the certificate and key of the same signer' });
  }
}
