import { t } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { isMosError } from '../../src/base/index.js';
import { certificateToPem, parseCaBundle, verifyInstallSignature, type VerifyInstallSignatureOptions } from '../../src/trust/index.js';
import { needs } from '../support/env.js';
import { mintPki, type KeyKind } from '../support/pki.js';

// Every single-byte change is tried, not a sample: the matrix is the point of this file.
const INSTALL = Buffer.from('{"version":1,"product":"p","update_type":"complete","targets":[{"name":"hostfs","digest":"sha256:00"}]}');
const NAMED_CHECK = /signature does not match|malformed|expired|not valid before|not a CA|not signed by|does not chain|key usage|unknown critical|weak|SHA-1|RSA-\d+|path length|signature algorithm|is itself|unsupported/;

function flips(buf: Uint8Array, mask: number): Generator<[number, Buffer]> {
  return (function* () {
    for (let i = 0; i < buf.length; i++) {
      const copy = Buffer.from(buf);
      copy[i]! ^= mask;
      yield [i, copy];
    }
  })();
}

/** Runs every variant; returns positions that were accepted or failed without a TRUST_* code naming a check. */
function survivors(variants: Iterable<[number, Partial<VerifyInstallSignatureOptions>]>, base: VerifyInstallSignatureOptions, codes: Map<string, number>): string[] {
  const bad: string[] = [];
  for (const [i, change] of variants) {
    try {
      verifyInstallSignature({ ...base, ...change });
      bad.push(`${i}: accepted`);
    } catch (e) {
      if (!isMosError(e) || !e.code.startsWith('TRUST_') || !NAMED_CHECK.test(e.message)) bad.push(`${i}: ${String(e)}`);
      else codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
  }
  return bad;
}

for (const kind of ['rsa3072', 'ec256'] as KeyKind[]) {
  t.test(`every single-byte flip is rejected (${kind} leaf)`, { skip: needs({ programs: ['openssl'] }) }, async (t) => {
    const pki = await mintPki(t, { leafKey: kind });
    const file = join(pki.dir, 'install.json');
    await writeFile(file, INSTALL);
    const signature = await readFile(await pki.sign(file));
    const certPem = await readFile(pki.leafCert, 'utf8');
    const base = { data: INSTALL, signature, certPem, anchors: parseCaBundle(await readFile(pki.caCert), pki.caCert) };
    t.ok(verifyInstallSignature(base), 'the untouched triple verifies');

    const codes = new Map<string, number>();
    const data = survivors(
      (function* () {
        for (const [i, d] of flips(INSTALL, 0x01)) yield [i, { data: d }] as [number, Partial<VerifyInstallSignatureOptions>];
      })(),
      base,
      codes,
    );
    t.same(data, [], `all ${INSTALL.length} install.json flips rejected`);
    t.equal(codes.get('TRUST_SIGNATURE_INVALID'), INSTALL.length, 'each as "signature does not match"');

    for (const mask of [0x01, 0x80, 0xff]) {
      const sig = survivors(
        (function* () {
          for (const [i, s] of flips(signature, mask)) yield [i, { signature: s }] as [number, Partial<VerifyInstallSignatureOptions>];
        })(),
        base,
        codes,
      );
      t.same(sig, [], `all ${signature.length} signature flips (xor ${mask}) rejected`);
    }

    const der = new X509Certificate(certPem).raw;
    for (const mask of [0x01, 0xff]) {
      const certCodes = new Map<string, number>();
      const cert = survivors(
        (function* () {
          for (const [i, d] of flips(der, mask)) yield [i, { certPem: certificateToPem(d) }] as [number, Partial<VerifyInstallSignatureOptions>];
        })(),
        base,
        certCodes,
      );
      t.same(cert, [], `all ${der.length} leaf DER flips (xor ${mask}) rejected: ${JSON.stringify(Object.fromEntries(certCodes))}`);
    }
  });
}
