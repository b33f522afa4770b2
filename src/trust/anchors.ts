import { decodeCertificates } from './pem.js';
import { parseCertificate, type ParsedCert } from './cert.js';

/** Trusted manifest CA certificates, parsed once; every one of them is a root of trust. */
export interface TrustAnchors {
  /** Where they came from (the CA file), for messages. */
  readonly subject: string;
  readonly certs: readonly ParsedCert[];
}

/**
 * Parses a CA bundle (one or more PEM certificates). Empty, oversized, non-PEM or non-X.509 input
 * throws TRUST_PEM_INVALID naming `subject`. Pure: the caller reads the file.
 */
export function parseCaBundle(pem: string | Uint8Array, subject: string): TrustAnchors {
  const ders = decodeCertificates(pem, subject, 'TRUST_PEM_INVALID');
  const certs = ders.map((der, i) => parseCertificate(der, subject, 'TRUST_PEM_INVALID', `CA certificate ${i + 1}`));
  return { subject, certs };
}
