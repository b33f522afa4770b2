import { X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { X509Certificate as CoreX509 } from '@sigstore/core';
import { MosError, type ErrorCode } from '../base/index.js';

/** A certificate parsed twice: node:crypto for names, keys and signatures; @sigstore/core for extensions. */
export interface ParsedCert {
  readonly der: Buffer;
  readonly node: NodeX509;
  readonly core: CoreX509;
  /** Subject DN, comma-separated in certificate order (`C=US, O=Example, CN=release`). */
  readonly name: string;
  /** Raw DER of the subject and issuer Names: chains are built on byte equality (RFC 5280 §7.1). */
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Signature algorithm OID (outer AlgorithmIdentifier, checked equal to the signed one). */
  readonly sigAlgOid: string;
  readonly publicKey: KeyObject;
  readonly extensions: readonly { readonly oid: string; readonly critical: boolean }[];
}

/**
 * Parses one DER certificate strictly: X.509 v3, canonical DER with no trailing bytes, outer and
 * signed signature algorithms equal. Anything else throws `code` naming `subject`.
 */
export function parseCertificate(der: Buffer, subject: string, code: ErrorCode, what = 'certificate'): ParsedCert {
  const fail = (message: string, cause?: unknown): MosError =>
    new MosError({ code, subject, message: `${what} is malformed: ${message}`, cause });
  let node: NodeX509;
  let core: CoreX509;
  try {
    node = new NodeX509(der);
    core = CoreX509.parse(der as Buffer<ArrayBuffer>);
  } catch (e) {
    throw fail(e instanceof Error ? e.message : String(e), e);
  }
  try {
    // A flipped length byte can still parse; re-encoding must give back exactly the input.
    if (!core.root.toDER().equals(der)) throw fail('not canonical DER or trailing bytes');
    const tbs = core.tbsCertificate;
    if (!tbs.subs[0]?.tag.isContextSpecific(0)) throw fail('not an X.509 v3 certificate');
    if (core.version !== 'v3') throw fail(`version ${core.version}, want v3`);
    const outerAlg = core.root.subs[1];
    const innerAlg = tbs.subs[2];
    if (!outerAlg || !innerAlg || !outerAlg.toDER().equals(innerAlg.toDER())) {
      throw fail('signature algorithm differs from the signed one');
    }
    const sigAlgOid = outerAlg.subs[0]!.toOID();
    const extensions = core.extensions.map((ext) => {
      const oid = ext.subs[0]!.toOID();
      // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
      const critical = ext.subs.length === 3 ? ext.subs[1]!.toBoolean() : false;
      return { oid, critical };
    });
    const seen = new Set<string>();
    for (const e of extensions) {
      if (seen.has(e.oid)) throw fail(`extension ${e.oid} appears twice`);
      seen.add(e.oid);
    }
    // Touch the extensions we decide on so that a malformed value fails here, as malformed.
    void core.extBasicConstraints?.pathLenConstraint;
    void core.extKeyUsage?.keyCertSign;
    return {
      der,
      node,
      core,
      name: node.subject.split('\n').join(', '),
      subjectDer: core.subject,
      issuerDer: core.issuer,
      notBefore: core.notBefore,
      notAfter: core.notAfter,
      sigAlgOid,
      publicKey: node.publicKey,
      extensions,
    };
  } catch (e) {
    if (e instanceof MosError) throw e;
    throw fail(e instanceof Error ? e.message : String(e), e);
  }
}

/** The kind of a public key, or undefined for kinds we do not accept (DSA, RSA-PSS, X25519, ...). */
export function keyTypeOf(key: KeyObject): 'rsa' | 'ec' | 'ed25519' | undefined {
  const t = key.asymmetricKeyType;
  return t === 'rsa' || t === 'ec' || t === 'ed25519' ? t : undefined;
}

/** The subjectAltName entries (`email:a@b`, `DNS:x`, `URI:u`), or undefined without the extension. */
export function sanOf(cert: ParsedCert): string[] | undefined {
  const san = cert.node.subjectAltName;
  return san === undefined ? undefined : san.split(', ').filter((s) => s.length > 0);
}
