// Public surface of src/trust: signature, X.509 path and Sigstore bundle checks (pure), signing and certificate issuing for mosb.
export { parseCaBundle, type TrustAnchors } from './anchors.js';
export { verifyInstallSignature, type VerifyInstallSignatureOptions, type SignerInfo } from './signature.js';
export { signBytes } from './sign.js';
export { certificateToPem } from './pem.js';
export { MAX_PEM_BYTES, MAX_SIGNATURE_BYTES } from './constants.js';
export { verifySigstoreBundle, type VerifySigstoreBundleOptions } from './bundle.js';
export { verifyClientChain, type ClientIdentity } from './client-cert.js';
export { issueCa, issueLeaf, issueCrossCert, issueUefiCert, type BuiltCert } from './issue.js';
export { EKU_SITE_BUNDLE } from './constants.js';
export {
  DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES, pae, signEnvelope, parseEnvelope, verifyEnvelopeSignatures,
  type DsseEnvelope, type DsseSignature, type ParsedEnvelope, type VerifiedSignature,
} from './dsse.js';
