import type { BuiltCert } from './x509-build.js';

export type { BuiltCert } from './x509-build.js';

// The X.509 builder pulls in @peculiar/x509 and its reflection shim; only mosb's keyset commands need
// them, so they are loaded on first use.

/** Mints a self-signed RSA-3072 manifest CA (CA:TRUE, keyCertSign). */
export async function issueCa(opts: { name: string; notBefore: Date; notAfter: Date }): Promise<BuiltCert> {
  return (await import('./x509-build.js')).buildCa(opts);
}

/** Mints an RSA-3072 signing certificate (digitalSignature, EKU codeSigning) issued by the given CA. */
export async function issueLeaf(opts: { name: string; notBefore: Date; notAfter: Date; caCertPem: string; caKeyPem: string }): Promise<BuiltCert> {
  return (await import('./x509-build.js')).buildLeaf(opts);
}
