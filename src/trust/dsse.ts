import { createHash } from 'node:crypto';
import { MosError } from '../base/index.js';
import type { TrustAnchors } from './anchors.js';
import { MAX_CHAIN_CERTS, MAX_SIGNATURE_BYTES } from './constants.js';
import { decodeCertificates } from './pem.js';
import { signBytes } from './sign.js';
import { signerInfo, validateSignerPem, verifyRawSignature, type SignerInfo } from './signature.js';

/**
 * DSSE v1 envelopes (github.com/secure-systems-lab/dsse): the signed form of site bundles and trust-set
 * rotations. Each signature carries the signer's certificate chain in `cert` (PEM, leaf first), so an
 * envelope is verifiable on its own against the CA, like a mos install manifest with its `.pem`.
 */
export const DSSE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';

/** An envelope is a few certificates and a small JSON payload; far above any real one. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;
const MAX_SIGNATURES = 8;

export interface DsseSignature {
  /** sha256 hex of the signer certificate's DER (checked: an envelope has no byte that does not matter). */
  readonly keyid: string;
  /** Base64 raw signature over PAE(payloadType, payload). */
  readonly sig: string;
  /** Signer certificate PEM, intermediates after the leaf. */
  readonly cert: string;
}

export interface DsseEnvelope {
  readonly payloadType: string;
  /** Base64 of the payload bytes. */
  readonly payload: string;
  readonly signatures: readonly DsseSignature[];
}

/** A parsed envelope and its decoded payload (the exact signed bytes). */
export interface ParsedEnvelope {
  readonly envelope: DsseEnvelope;
  readonly payload: Buffer;
}

/** DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <body>` (lengths in ASCII decimal bytes). */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.byteLength} `), type, Buffer.from(` ${payload.byteLength} `), payload]);
}

/** Signs `payload` once per signer (a rotation is signed by the outgoing and the incoming key). */
export function signEnvelope(payloadType: string, payload: Uint8Array, signers: readonly { keyPem: string | Uint8Array; certPem: string; subject?: string }[]): DsseEnvelope {
  const message = pae(payloadType, payload);
  return {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: signers.map((s) => {
      const leaf = decodeCertificates(s.certPem, s.subject ?? 'signer certificate', 'TRUST_PEM_INVALID')[0]!;
      return {
        keyid: createHash('sha256').update(leaf).digest('hex'),
        sig: Buffer.from(signBytes(s.keyPem, message, s.subject ?? 'private key')).toString('base64'),
        cert: s.certPem,
      };
    }),
  };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Parses an envelope strictly: JSON object with exactly payloadType, payload and 1..8 signatures, each
 * with keyid, sig and cert; canonical base64; `payloadType` must be `expectedType`. Throws
 * TRUST_BUNDLE_INVALID naming `subject` and the field. Pure; does not verify.
 */
export function parseEnvelope(bytes: Uint8Array, subject: string, expectedType: string): ParsedEnvelope {
  const fail = (message: string): MosError =>
    new MosError({ code: 'TRUST_BUNDLE_INVALID', subject, message, hint: 'give a signed envelope made by mosb (bundle create)' });
  if (bytes.byteLength > MAX_ENVELOPE_BYTES) throw fail(`${bytes.byteLength} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw fail(`not a JSON DSSE envelope: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(doc)) throw fail('not a JSON object');
  const extra = Object.keys(doc).filter((k) => !['payloadType', 'payload', 'signatures'].includes(k));
  if (extra.length) throw fail(`unknown field ${JSON.stringify(extra[0])}`);
  const { payloadType, payload, signatures } = doc;
  if (typeof payloadType !== 'string') throw fail('payloadType is missing or not a string');
  if (payloadType !== expectedType) throw fail(`payloadType is ${JSON.stringify(payloadType)}, not ${expectedType}`);
  if (typeof payload !== 'string' || !BASE64.test(payload)) throw fail('payload is missing or not canonical base64');
  if (!Array.isArray(signatures) || signatures.length === 0) throw fail('signatures is missing or empty');
  if (signatures.length > MAX_SIGNATURES) throw fail(`${signatures.length} signatures, more than ${MAX_SIGNATURES}`);
  const sigs = signatures.map((s, i): DsseSignature => {
    const at = `signatures[${i}]`;
    if (!isObject(s)) throw fail(`${at} is not an object`);
    const unknown = Object.keys(s).filter((k) => !['keyid', 'sig', 'cert'].includes(k));
    if (unknown.length) throw fail(`${at} has an unknown field ${JSON.stringify(unknown[0])}`);
    if (typeof s.keyid !== 'string' || !/^[0-9a-f]{64}$/.test(s.keyid)) throw fail(`${at}.keyid is not a sha256 hex`);
    if (typeof s.sig !== 'string' || !BASE64.test(s.sig) || s.sig.length === 0) throw fail(`${at}.sig is missing or not canonical base64`);
    if (Buffer.from(s.sig, 'base64').byteLength > MAX_SIGNATURE_BYTES) throw fail(`${at}.sig is longer than any accepted key makes`);
    if (typeof s.cert !== 'string' || !s.cert.includes('-----BEGIN CERTIFICATE-----')) throw fail(`${at}.cert is not a PEM certificate chain`);
    return { keyid: s.keyid, sig: s.sig, cert: s.cert };
  });
  return { envelope: { payloadType, payload, signatures: sigs }, payload: Buffer.from(payload, 'base64') };
}

/** One signature of an envelope that verified: who signed, and which anchors its chain ended at. */
export interface VerifiedSignature {
  readonly index: number;
  readonly signer: SignerInfo;
}

/**
 * Checks every signature of `parsed` as a site-bundle signature against `anchors` at `at`: the chain must
 * end at one of them with mosctl's site-bundle EKU on the leaf, and the signature must verify over the
 * PAE. Returns the ones that verified, with the reason each other one failed (for the error message).
 */
export function verifyEnvelopeSignatures(
  parsed: ParsedEnvelope,
  anchors: TrustAnchors,
  at: Date,
  subject: string,
): { verified: VerifiedSignature[]; failures: string[] } {
  const message = pae(parsed.envelope.payloadType, parsed.payload);
  const verified: VerifiedSignature[] = [];
  const failures: string[] = [];
  parsed.envelope.signatures.forEach((s, index) => {
    try {
      if (decodeCertificates(s.cert, `${subject} signatures[${index}].cert`, 'TRUST_CERT_INVALID').length > MAX_CHAIN_CERTS) {
        throw new MosError({ code: 'TRUST_CERT_INVALID', subject, message: `more than ${MAX_CHAIN_CERTS} certificates` });
      }
      const { leaf, path } = validateSignerPem(s.cert, `${subject} signatures[${index}].cert`, anchors, at, 'siteBundle');
      if (createHash('sha256').update(leaf.der).digest('hex') !== s.keyid) {
        throw new MosError({ code: 'TRUST_SIGNATURE_INVALID', subject, message: 'keyid is not the sha256 of its certificate' });
      }
      verifyRawSignature({ key: leaf.publicKey, data: message, signature: Buffer.from(s.sig, 'base64'), subject });
      verified.push({ index, signer: signerInfo(path) });
    } catch (e) {
      if (!(e instanceof MosError)) throw e;
      failures.push(`signature ${index + 1}: ${e.message}`);
    }
  });
  return { verified, failures };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
