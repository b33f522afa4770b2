import { createHash } from 'node:crypto';
import type { TrustAnchors } from './anchors.js';
import { parseCertificate } from './cert.js';
import { validatePath } from './path.js';

/** Who a verified API client certificate names. */
export interface ClientIdentity {
  /** Subject DN in certificate order (`O=mos:admin, CN=ops-1`). */
  readonly subject: string;
  /** SHA-256 of the leaf certificate's DER, hex: what the audit log and the rate limit key on. */
  readonly fingerprint: string;
  /** Every `O=` value of the subject, in order (roles are taken from these). */
  readonly organizations: readonly string[];
  /** Every `OU=` value of the subject. */
  readonly organizationalUnits: readonly string[];
  readonly notAfter: Date;
}

/**
 * Verifies a TLS client's certificate chain (leaf first, DER, as the peer sent it) against the API
 * client CA with the manifest path rules (README "Trust"): signatures and names, validity at `at`, CA
 * flags and path length, key usage, EKU allowing clientAuth, no CA:TRUE leaf, no weak keys or SHA-1.
 * Throws a TRUST_* MosError naming the failed check; pure.
 */
export function verifyClientChain(chain: readonly Buffer[], anchors: TrustAnchors, at: Date): ClientIdentity {
  const subject = 'client certificate';
  const [leafDer, ...rest] = chain;
  const leaf = parseCertificate(leafDer ?? Buffer.alloc(0), subject, 'TRUST_CERT_INVALID', 'client certificate');
  const intermediates = rest.map((d, i) => parseCertificate(d, subject, 'TRUST_CERT_INVALID', `chain certificate ${i + 2}`));
  validatePath({ leaf, intermediates, anchors, at, subject, purpose: 'clientAuth' });
  const values = (key: string): string[] =>
    leaf.node.subject
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1));
  return {
    subject: leaf.name,
    fingerprint: createHash('sha256').update(leaf.der).digest('hex'),
    organizations: values('O'),
    organizationalUnits: values('OU'),
    notAfter: leaf.notAfter,
  };
}
