import type { BuiltCert } from './x509-build.js';
import { EKU_SITE_BUNDLE } from './constants.js';

export type { BuiltCert } from './x509-build.js';

// The X.509 builder pulls in @peculiar/x509 and its reflection shim; only mosb's keyset commands need
// them, so they are loaded on first use.

/** Mints a self-signed RSA-3072 manifest CA (CA:TRUE, keyCertSign). */
export async function issueCa(opts: { name: string; notBefore: Date; notAfter: Date }): Promise<BuiltCert> {
  return (await import('./x509-build.js')).buildCa(opts);
}

/**
 * Mints an RSA-3072 signing certificate (digitalSignature) issued by the given CA: EKU codeSigning (a
 * manifest key), or with `site` mosctl's site-bundle EKU (a site key, README "Site bundles").
 */
export async function issueLeaf(opts: { name: string; notBefore: Date; notAfter: Date; caCertPem: string; caKeyPem: string; site?: boolean }): Promise<BuiltCert> {
  const { site, ...rest } = opts;
  return (await import('./x509-build.js')).buildLeaf({ ...rest, ...(site ? { eku: EKU_SITE_BUNDLE } : {}) });
}

/** Mints a cross-certificate of CA `subjectCaPem` issued by the CA `issuerCertPem` (manifest CA rotation). */
export async function issueCrossCert(opts: { subjectCaPem: string; issuerCertPem: string; issuerKeyPem: string; notBefore: Date; notAfter: Date }): Promise<string> {
  return (await import('./x509-build.js')).buildCrossCert(opts);
}

/** Mints a self-signed RSA-2048 UEFI Secure Boot certificate (a keyset's PK, KEK or db; `codeSigning` for db). */
export async function issueUefiCert(opts: { name: string; notBefore: Date; notAfter: Date; codeSigning?: boolean }): Promise<BuiltCert> {
  return (await import('./x509-build.js')).buildUefiCert(opts);
}
