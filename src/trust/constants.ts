/** Limits and object identifiers of the trust module (RFC 5280 §4.2, RFC 3279, RFC 8410). */

/** A PEM file bigger than this is refused before parsing: CA bundles and signer chains are a few KiB. */
export const MAX_PEM_BYTES = 1024 * 1024;
/** A raw signature longer than this cannot come from any accepted key (RSA-16384 is 2 KiB). */
export const MAX_SIGNATURE_BYTES = 4096;
/** Certificates a signer PEM may carry, leaf included. */
export const MAX_CHAIN_CERTS = 10;
/** Smallest accepted RSA modulus, in bits. */
export const MIN_RSA_BITS = 2048;

export const OID_BASIC_CONSTRAINTS = '2.5.29.19';
export const OID_KEY_USAGE = '2.5.29.15';
export const OID_EXT_KEY_USAGE = '2.5.29.37';
export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_SUBJECT_KEY_ID = '2.5.29.14';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';

/** Extensions our path validation understands; any other extension marked critical is rejected. */
export const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  OID_BASIC_CONSTRAINTS,
  OID_KEY_USAGE,
  OID_EXT_KEY_USAGE,
  OID_SUBJECT_ALT_NAME,
  OID_SUBJECT_KEY_ID,
  OID_AUTHORITY_KEY_ID,
]);

export const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
export const EKU_ANY = '2.5.29.37.0';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/**
 * mosctl's site-bundle signing EKU (README "Site bundles"): an OID under the ITU-T X.667 UUID arc
 * (2.25.<UUID 66d5f541-18bf-4b61-b137-36d09f77a725 as an integer>), so it needs no registration. A leaf
 * with it may sign site bundles and trust-set rotations and nothing else; without it, nothing signs them.
 */
export const EKU_SITE_BUNDLE = '2.25.136692189148771696454349928256710879013';

/** Certificate signature algorithms we accept, by OID. */
export const ACCEPTED_CERT_SIG_ALGS: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.3.101.112': 'Ed25519',
};

/** Weak certificate signature algorithms, named in the rejection. */
export const WEAK_CERT_SIG_ALGS: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10040.4.3': 'dsa-with-SHA1',
  '1.3.14.3.2.29': 'sha1WithRSASignature',
};

/** Named curves accepted for EC keys and the hash a raw ECDSA signature uses with each. */
export const EC_CURVE_HASH: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = {
  prime256v1: 'sha256',
  secp384r1: 'sha384',
  secp521r1: 'sha512',
};
