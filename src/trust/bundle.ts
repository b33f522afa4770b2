import { createHash } from 'node:crypto';
import { bundleFromJSON, BUNDLE_V03_MEDIA_TYPE, type Bundle } from '@sigstore/bundle';
import { RFC3161Timestamp, X509Certificate as CoreX509 } from '@sigstore/core';
import { Verifier, VerificationError, PolicyError, toSignedEntity, type TrustMaterial } from '@sigstore/verify';
import { MosError } from '../base/index.js';
import type { TrustAnchors } from './anchors.js';
import { parseCertificate, type ParsedCert } from './cert.js';
import { validatePath } from './path.js';
import { decodeCertificates } from './pem.js';
import { signerInfo, validateSignerPem, type SignerInfo } from './signature.js';

/** Inputs of {@link verifySigstoreBundle}. */
export interface VerifySigstoreBundleOptions {
  /** The exact signed bytes (install.json). */
  readonly data: Uint8Array;
  /** The bundle, parsed from JSON. */
  readonly bundle: unknown;
  /** Manifest CAs (self-signed roots) the signer must chain to. */
  readonly anchors: TrustAnchors;
  /** The TSA's chain, its signing certificate first; required for certificate bundles. */
  readonly tsaAnchors?: TrustAnchors;
  /**
   * Public-key bundles: the signer certificate (+ intermediates) whose SHA-256 DER fingerprint is the
   * bundle's `publicKey.hint`. Certificate bundles: optional intermediates between the bundle's
   * certificate and the CA.
   */
  readonly certPem?: string | Uint8Array;
  /** Clock; default now. Public-key bundles are checked at it; timestamps must not be after it. */
  readonly now?: Date;
  /** Name of the signed file in messages; default `install.json`. */
  readonly subject?: string;
}

const DIGESTS: Readonly<Record<string, string>> = { SHA2_256: 'sha256', SHA2_384: 'sha384', SHA2_512: 'sha512' };
const ALWAYS = { start: new Date(0), end: new Date(8.64e15) };

/**
 * Verifies a Sigstore bundle v0.3 (`messageSignature`) offline with @sigstore/verify and our own
 * path policy. Accepted forms (README "Trust"): a `certificate` bundle with >= 1 RFC 3161 timestamp
 * from a TSA in `tsaAnchors` (the chain is checked at the timestamped time), or a `publicKey`
 * bundle whose hint is the SHA-256 fingerprint of the certificate in `certPem` (checked at `now`).
 * No transparency-log entries. Throws TRUST_* naming the failed check.
 */
export function verifySigstoreBundle(opts: VerifySigstoreBundleOptions): SignerInfo {
  const dataName = opts.subject ?? 'install.json';
  const now = opts.now ?? new Date();
  const invalid = (message: string, cause?: unknown): MosError =>
    new MosError({ code: 'TRUST_BUNDLE_INVALID', subject: 'Sigstore bundle', message, cause });

  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(opts.bundle);
  } catch (e) {
    throw invalid(`not a Sigstore bundle: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE) throw invalid(`media type ${bundle.mediaType}, want ${BUNDLE_V03_MEDIA_TYPE}`);
  if (bundle.content.$case !== 'messageSignature') throw invalid('only messageSignature bundles are accepted, not DSSE envelopes');
  if (bundle.verificationMaterial.tlogEntries.length > 0) throw invalid('transparency-log entries cannot be checked offline; publish without them');

  // @sigstore/verify does not compare messageDigest with the artifact: we do.
  const md = bundle.content.messageSignature.messageDigest;
  const hashName = md ? hashAlgName(md.algorithm) : undefined;
  if (!md || !hashName) throw invalid('messageDigest must be SHA2_256, SHA2_384 or SHA2_512');
  if (!createHash(hashName).update(opts.data).digest().equals(md.digest)) {
    throw new MosError({ code: 'TRUST_SIGNATURE_INVALID', subject: dataName, message: `bundle message digest does not match ${dataName}` });
  }

  const material = bundle.verificationMaterial.content;
  const stamps = (bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps ?? []).map((ts, i) => {
    try {
      return RFC3161Timestamp.parse(Buffer.from(ts.signedTimestamp));
    } catch (e) {
      throw invalid(`timestamp ${i + 1} is malformed`, e);
    }
  });
  let path: ParsedCert[];
  let trust: TrustMaterial;
  switch (material.$case) {
    case 'certificate': {
      if (!opts.tsaAnchors) throw invalid('a certificate bundle needs a timestamp authority (tsaAnchors) to be checked offline');
      if (stamps.length === 0) throw invalid('certificate bundle has no RFC 3161 timestamp');
      const leaf = parseCertificate(Buffer.from(material.certificate.rawBytes), 'bundle certificate', 'TRUST_CERT_INVALID', 'bundle certificate');
      const intermediates = opts.certPem
        ? decodeCertificates(opts.certPem, 'intermediates', 'TRUST_CERT_INVALID').map((d) => parseCertificate(d, 'intermediates', 'TRUST_CERT_INVALID'))
        : [];
      // The chain must hold when the TSA says the signature existed (the point of the timestamp).
      path = [];
      for (const ts of stamps) {
        if (ts.signingTime > now) throw invalid(`timestamp ${ts.signingTime.toISOString()} is in the future`);
        path = validatePath({ leaf, intermediates, anchors: opts.anchors, at: ts.signingTime, subject: 'bundle certificate' });
      }
      trust = trustMaterial(opts.anchors, intermediates, opts.tsaAnchors, () => {
        throw invalid('public-key lookup in a certificate bundle');
      });
      break;
    }
    case 'publicKey': {
      if (!opts.certPem) throw invalid('a public-key bundle needs the signer certificate (certPem) its hint names');
      const validated = validateSignerPem(opts.certPem, 'signer certificate', opts.anchors, now);
      path = validated.path;
      const fingerprint = createHash('sha256').update(validated.leaf.der).digest('hex');
      const hint = material.publicKey.hint.toLowerCase().replace(/^sha256:/, '');
      if (hint !== fingerprint) throw invalid(`publicKey hint ${material.publicKey.hint} is not the signer certificate's SHA-256 fingerprint ${fingerprint}`);
      const key = validated.leaf.publicKey;
      // Validity was checked at `now` by validatePath; timestamps, if any, are verified by sigstore.
      trust = trustMaterial(opts.anchors, [], opts.tsaAnchors, () => ({ publicKey: key, validFor: () => true }));
      break;
    }
    default:
      throw invalid(`verification material ${material.$case} is not accepted (v0.3 allows certificate or publicKey)`);
  }

  const thresholds = { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: material.$case === 'certificate' ? 1 : 0 };
  try {
    new Verifier(trust, thresholds).verify(toSignedEntity(bundle, Buffer.from(opts.data)));
  } catch (e) {
    throw mapSigstoreError(e, dataName);
  }
  return signerInfo(path);
}

function hashAlgName(algorithm: unknown): string | undefined {
  // protobuf-specs decodes the enum to its number; JSON input may also carry the name.
  const byNumber: Record<number, string> = { 1: 'sha256', 2: 'sha384', 3: 'sha512' };
  if (typeof algorithm === 'number') return byNumber[algorithm];
  return DIGESTS[String(algorithm)];
}

function trustMaterial(
  anchors: TrustAnchors,
  intermediates: readonly ParsedCert[],
  tsa: TrustAnchors | undefined,
  publicKey: TrustMaterial['publicKey'],
): TrustMaterial {
  const core = (c: ParsedCert): CoreX509 => c.core;
  return {
    certificateAuthorities: anchors.certs.map((a) => ({ certChain: [...intermediates.map(core), core(a)], validFor: ALWAYS })),
    timestampAuthorities: tsa ? [{ certChain: tsa.certs.map(core), validFor: ALWAYS }] : [],
    tlogs: [],
    ctlogs: [],
    publicKey,
  };
}

function mapSigstoreError(e: unknown, dataName: string): MosError {
  if (e instanceof MosError) return e;
  if (e instanceof VerificationError || e instanceof PolicyError) {
    const code = e.code as string;
    if (code === 'SIGNATURE_ERROR') {
      return new MosError({ code: 'TRUST_SIGNATURE_INVALID', subject: dataName, message: `signature does not match ${dataName}`, cause: e });
    }
    if (code === 'CERTIFICATE_ERROR' || code === 'PUBLIC_KEY_ERROR') {
      return new MosError({ code: 'TRUST_CERT_UNTRUSTED', subject: 'bundle certificate', message: `certificate rejected: ${e.message}`, cause: e });
    }
    const what = code === 'TIMESTAMP_ERROR' ? 'timestamp rejected' : 'bundle rejected';
    return new MosError({ code: 'TRUST_BUNDLE_INVALID', subject: 'Sigstore bundle', message: `${what}: ${e.message}`, cause: e });
  }
  // @sigstore/verify throws TypeErrors on some malformed inputs: still a rejection of the bundle.
  return new MosError({ code: 'TRUST_BUNDLE_INVALID', subject: 'Sigstore bundle', message: `bundle could not be verified: ${e instanceof Error ? e.message : String(e)}`, cause: e });
}
