import { MosError, type ErrorCode } from '../base/index.js';
import type { TrustAnchors } from './anchors.js';
import type { ParsedCert } from './cert.js';
import {
  ACCEPTED_CERT_SIG_ALGS,
  EC_CURVE_HASH,
  EKU_ANY,
  EKU_CLIENT_AUTH,
  EKU_CODE_SIGNING,
  EKU_SITE_BUNDLE,
  KNOWN_EXTENSIONS,
  MAX_CHAIN_CERTS,
  MIN_RSA_BITS,
  WEAK_CERT_SIG_ALGS,
} from './constants.js';

/** Inputs of {@link validatePath}. */
export interface ValidatePathOptions {
  readonly leaf: ParsedCert;
  /** Untrusted certificates that may complete the path (those after the leaf in its PEM). */
  readonly intermediates: readonly ParsedCert[];
  readonly anchors: TrustAnchors;
  /** Time every certificate of the path must be valid at. */
  readonly at: Date;
  /** The signer certificate file, for messages. */
  readonly subject: string;
  /**
   * What the leaf is for (default code signing: manifests). `clientAuth` is the upgrade API's client
   * certificate: its EKU must allow client authentication and it must not be a CA.
   */
  readonly purpose?: 'codeSigning' | 'clientAuth' | 'siteBundle';
}

// `strict`: the leaf must list the EKU itself (anyExtendedKeyUsage or no EKU extension is not enough), so
// a manifest key can never sign a site bundle. `forbids`: an EKU the leaf must not carry, so a site key can
// never sign an install manifest, whatever else it lists.
const PURPOSES = {
  codeSigning: { eku: EKU_CODE_SIGNING, words: 'code signing', leaf: 'signer certificate', leafMayBeCa: true, use: 'sign with', strict: false, forbids: EKU_SITE_BUNDLE },
  clientAuth: { eku: EKU_CLIENT_AUTH, words: 'client authentication', leaf: 'client certificate', leafMayBeCa: false, use: 'connect with', strict: false, forbids: undefined },
  siteBundle: { eku: EKU_SITE_BUNDLE, words: 'site bundle signing', leaf: 'site certificate', leafMayBeCa: false, use: 'sign with', strict: true, forbids: EKU_CODE_SIGNING },
} as const;
type Purpose = (typeof PURPOSES)[keyof typeof PURPOSES];

/**
 * RFC 5280 path validation from `leaf` to one of `anchors`, with mosctl's policy (README "Trust"):
 * signatures and names along the path, validity at `at`, CA flag, pathLen, keyUsage, extendedKeyUsage
 * allowing code signing, no unknown critical extension, no RSA < 2048, no SHA-1. Returns the path
 * leaf first, anchor last; throws a TRUST_* MosError naming the failed check.
 */
export function validatePath(opts: ValidatePathOptions): ParsedCert[] {
  const { leaf, anchors, subject } = opts;
  const purpose = PURPOSES[opts.purpose ?? 'codeSigning'];
  const reject = (code: ErrorCode, message: string, hint?: string): MosError => new MosError({ code, subject, message, hint });
  if (anchors.certs.some((a) => a.der.equals(leaf.der))) {
    throw reject('TRUST_CERT_INVALID', `${purpose.leaf} "${leaf.name}" is itself a trusted CA`, `${purpose.use} a certificate issued by the CA`);
  }
  const path: ParsedCert[] = [leaf];
  checkKey(leaf, purpose.leaf, reject);
  for (;;) {
    const cur = path[path.length - 1]!;
    checkCertSigAlg(cur, reject);
    const byName = (c: ParsedCert): boolean => c.subjectDer.equals(cur.issuerDer);
    const signs = (c: ParsedCert): boolean => {
      try {
        return cur.node.verify(c.publicKey);
      } catch {
        return false;
      }
    };
    const anchor = anchors.certs.find((a) => byName(a) && signs(a));
    if (anchor) {
      checkKey(anchor, 'trusted CA', reject);
      path.push(anchor);
      break;
    }
    const next = opts.intermediates.find((c) => !path.includes(c) && byName(c) && signs(c));
    if (!next) {
      if (byName(cur) && signs(cur)) {
        throw reject(
          'TRUST_CERT_UNTRUSTED',
          `the chain ends at the untrusted root "${cur.name}": a self-signed certificate that is not in ${anchors.subject}`,
          'sign with a certificate issued by a CA in the CA file (or add that root to the CA file, if it is yours)',
        );
      }
      const named = [...anchors.certs, ...opts.intermediates].find((c) => c !== cur && byName(c));
      if (named) {
        throw reject('TRUST_CERT_UNTRUSTED', `certificate "${cur.name}" is not signed by "${named.name}" (its signature does not verify with that key)`);
      }
      throw reject(
        'TRUST_CERT_UNTRUSTED',
        `certificate "${cur.name}" does not chain to a trusted manifest CA: issuer "${cur.node.issuer.split('\n').join(', ')}" is not in ${anchors.subject}`,
        'sign with a certificate issued by a CA in the CA file, or put the intermediates after the leaf in the certificate PEM',
      );
    }
    if (path.length >= MAX_CHAIN_CERTS) throw reject('TRUST_CERT_UNTRUSTED', `certificate path longer than ${MAX_CHAIN_CERTS}`);
    checkKey(next, 'intermediate CA', reject);
    path.push(next);
  }
  checkPolicy(path, opts.at, purpose, reject);
  return path;
}

type Reject = (code: ErrorCode, message: string, hint?: string) => MosError;

function roleOf(i: number, path: readonly ParsedCert[], purpose: Purpose): string {
  return i === 0 ? purpose.leaf : i === path.length - 1 ? 'CA certificate' : 'intermediate CA certificate';
}

function checkCertSigAlg(cert: ParsedCert, reject: Reject): void {
  const weak = WEAK_CERT_SIG_ALGS[cert.sigAlgOid];
  if (weak) throw reject('TRUST_WEAK_ALGORITHM', `certificate "${cert.name}" is signed with ${weak}: SHA-1 and MD5 are not accepted`, 'reissue it with SHA-256');
  if (!ACCEPTED_CERT_SIG_ALGS[cert.sigAlgOid]) {
    throw reject('TRUST_CERT_INVALID', `certificate "${cert.name}" uses an unsupported signature algorithm ${cert.sigAlgOid}`);
  }
}

function checkKey(cert: ParsedCert, role: string, reject: Reject): void {
  const key = cert.publicKey;
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) throw reject('TRUST_WEAK_KEY', `${role} "${cert.name}" has an RSA-${bits} key, less than the ${MIN_RSA_BITS} bits required`);
      return;
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
      if (!EC_CURVE_HASH[curve]) throw reject('TRUST_WEAK_KEY', `${role} "${cert.name}" uses EC curve ${curve}; accepted: P-256, P-384, P-521`);
      return;
    }
    case 'ed25519':
      return;
    default:
      throw reject('TRUST_CERT_INVALID', `${role} "${cert.name}" has an unsupported ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
}

// Checks run once the path is known, in the order a person would fix them.
function checkPolicy(path: readonly ParsedCert[], at: Date, purpose: Purpose, reject: Reject): void {
  path.forEach((cert, i) => {
    const role = roleOf(i, path, purpose);
    if (cert.notAfter < at) {
      throw reject('TRUST_CERT_EXPIRED', `${role} expired on ${isoSeconds(cert.notAfter)} ("${cert.name}")`, 'renew the certificate');
    }
    if (cert.notBefore > at) {
      throw reject('TRUST_CERT_NOT_YET_VALID', `${role} is not valid before ${isoSeconds(cert.notBefore)} ("${cert.name}")`, 'check the clock, or wait');
    }
    const unknown = cert.extensions.find((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid));
    if (unknown) throw reject('TRUST_CERT_INVALID', `${role} "${cert.name}" has an unknown critical extension ${unknown.oid}`);
    // EKU nests down the path (as Go's crypto/x509 does): each certificate that lists EKUs must allow the purpose.
    const eku = cert.node.keyUsage;
    if (eku !== undefined && !eku.includes(purpose.eku) && !eku.includes(EKU_ANY)) {
      throw reject('TRUST_CERT_INVALID', `${role} "${cert.name}" extended key usage does not allow ${purpose.words} (has ${eku.join(', ') || 'none'})`);
    }
    const ku = cert.core.extKeyUsage;
    if (i === 0 && purpose.strict && !eku?.includes(purpose.eku)) {
      throw reject(
        'TRUST_CERT_INVALID',
        `${role} "${cert.name}" is not a site certificate: its extended key usage lacks mosctl's site-bundle OID ${purpose.eku} (has ${eku?.join(', ') || 'none'})`,
        'sign site bundles with a site key (mosb project add KEYSET:SITE --site), never with a manifest key',
      );
    }
    if (i === 0 && purpose.forbids !== undefined && eku?.includes(purpose.forbids)) {
      throw reject(
        'TRUST_CERT_INVALID',
        purpose.forbids === EKU_SITE_BUNDLE
          ? `${role} "${cert.name}" is a site certificate (site-bundle OID ${EKU_SITE_BUNDLE}): it may sign site bundles, never install manifests`
          : `${role} "${cert.name}" also allows code signing: a site key must not be able to sign install manifests`,
        purpose.forbids === EKU_SITE_BUNDLE ? 'sign install manifests with a project key (mosb project add KEYSET:PROJECT)' : 'issue the site certificate with the site-bundle EKU only',
      );
    }
    if (i === 0) {
      if (ku && !ku.digitalSignature) throw reject('TRUST_CERT_INVALID', `${role} "${cert.name}" key usage lacks digitalSignature`);
      if (!purpose.leafMayBeCa && cert.core.extBasicConstraints?.isCA) {
        throw reject('TRUST_CERT_INVALID', `${role} "${cert.name}" is a CA certificate (basicConstraints CA:TRUE)`, 'issue a leaf certificate (CA:FALSE) for the client');
      }
      return;
    }
    const bc = cert.core.extBasicConstraints;
    if (!bc || !bc.isCA) throw reject('TRUST_CERT_INVALID', `issuer is not a CA: "${cert.name}" has no basicConstraints CA:TRUE`);
    if (ku && !ku.keyCertSign) throw reject('TRUST_CERT_INVALID', `issuer "${cert.name}" key usage lacks keyCertSign`);
    const below = i - 1; // CA certificates between this issuer and the leaf
    const max = bc.pathLenConstraint;
    if (max !== undefined && BigInt(below) > max) {
      throw reject('TRUST_CERT_INVALID', `path length constraint exceeded: "${cert.name}" allows ${max} intermediate CA(s) below it, the path has ${below}`);
    }
  });
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
