// @peculiar/x509 resolves its ASN.1 classes through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Test } from 'tap';
import { createPrivateKey, createPublicKey, generateKeyPair, sign as cryptoSign, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exec } from '../../src/host/index.js';

x509.cryptoProvider.set(webcrypto as never);

/** Key kinds a test PKI is made of: `rsa3072` is mos's default. */
export type KeyKind = 'rsa3072' | 'rsa2048' | 'rsa1024' | 'ec256' | 'ec384' | 'ed25519';

/** Validity window of one certificate. */
export interface Dates {
  readonly start: Date;
  readonly end: Date;
}

/** What {@link mintPki} builds; every field defaults to a valid mos-like PKI. */
export interface PkiOptions {
  /** Leaf key; default rsa3072. */
  readonly leafKey?: KeyKind;
  /** Root (and intermediate) key; default rsa3072. */
  readonly caKey?: KeyKind;
  /** Put an intermediate CA between root and leaf; default false. */
  readonly intermediate?: boolean;
  /** Extension lines (openssl x509v3 config syntax) replacing the defaults below. */
  readonly caExt?: readonly string[];
  readonly intermediateExt?: readonly string[];
  readonly leafExt?: readonly string[];
  readonly caDates?: Dates;
  readonly intermediateDates?: Dates;
  readonly leafDates?: Dates;
  /** Digest the issuer signs the leaf with; default sha256. */
  readonly leafMd?: 'sha256' | 'sha1';
  readonly caCn?: string;
  readonly leafCn?: string;
  /** Keys are cached per process by role and kind; a different salt gets different keys (a wrong CA). */
  readonly keySalt?: string;
  /**
   * Who makes the certificates: `node` (default) builds them in-process with @peculiar/x509, the way
   * `openssl ca` would (same fields, order and encoding; test/trust/verify.test.ts compares the two);
   * `openssl` runs `openssl req` + `openssl ca` and signs with `openssl dgst`, the independent oracle.
   * An extension line `node` cannot build (see {@link buildableExt}) makes that PKI use openssl.
   */
  readonly via?: 'node' | 'openssl';
}

/** Paths of a minted PKI (all PEM) and a signer using the openssl CLI. */
export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly intermediateCert?: string;
  readonly intermediateKey?: string;
  readonly leafCert: string;
  readonly leafKey: string;
  /** Leaf followed by the intermediate (if any): what a signer ships as its certificate PEM. */
  readonly chainPem: string;
  readonly leafKind: KeyKind;
  /** What made the certificates (see {@link PkiOptions.via}). */
  readonly via: 'node' | 'openssl';
  /**
   * Signs `file` with the leaf key the way mos does (SHA-256, SHA-384 for P-384, raw Ed25519): with
   * node:crypto, or `openssl dgst` (`pkeyutl -rawin` for Ed25519) when the PKI is `via: 'openssl'`.
   * Returns the signature path.
   */
  sign(file: string, out?: string): Promise<string>;
}

export const DEFAULT_CA_EXT = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash'];
export const DEFAULT_INTERMEDIATE_EXT = [
  'basicConstraints=critical,CA:TRUE,pathlen:0',
  'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid',
];
export const DEFAULT_LEAF_EXT = [
  'basicConstraints=critical,CA:FALSE',
  'keyUsage=critical,digitalSignature',
  'extendedKeyUsage=codeSigning',
  'subjectAltName=email:release@example.test',
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid',
];

const DAY = 86_400_000;
const keyCache = new Map<string, Promise<string>>();

async function openssl(args: readonly string[], input?: string): Promise<string> {
  return (await exec(['openssl', ...args], input === undefined ? {} : { input })).stdout;
}

const generate = promisify(generateKeyPair) as (type: string, opts: object) => Promise<{ privateKey: KeyObject }>;

/** A PEM (PKCS#8, as `openssl genpkey` writes) private key of `kind`, minted once per process per (role, kind, salt). */
export function keyPem(kind: KeyKind, role: string, salt = ''): Promise<string> {
  const id = `${role}:${kind}:${salt}`;
  let p = keyCache.get(id);
  if (!p) {
    const alg: Record<KeyKind, [string, object]> = {
      rsa3072: ['rsa', { modulusLength: 3072 }],
      rsa2048: ['rsa', { modulusLength: 2048 }],
      rsa1024: ['rsa', { modulusLength: 1024 }],
      ec256: ['ec', { namedCurve: 'P-256' }],
      ec384: ['ec', { namedCurve: 'P-384' }],
      ed25519: ['ed25519', {}],
    };
    const [type, opts] = alg[kind];
    // Off the main thread (libuv pool): the keys of one PKI are made in parallel.
    p = generate(type, opts).then(({ privateKey }) => privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    keyCache.set(id, p);
  }
  return p;
}

// openssl ca's date form; four-digit years keep post-2049 dates unambiguous.
function caDate(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function caConfig(dir: string): string {
  return [
    '[ca]',
    'default_ca = mini',
    '[mini]',
    `database = ${dir}/index.txt`,
    `new_certs_dir = ${dir}/newcerts`,
    `serial = ${dir}/serial`,
    'policy = any',
    'default_md = sha256',
    'unique_subject = no',
    'copy_extensions = none',
    '[any]',
    'commonName = supplied',
    'organizationName = optional',
    '',
  ].join('\n');
}

/** One certificate to issue: what both minting paths take. */
interface IssueSpec {
  readonly name: 'ca' | 'intermediate' | 'leaf';
  readonly cn: string;
  readonly kind: KeyKind;
  readonly ext: readonly string[];
  readonly dates: Dates;
  readonly serial: number;
  readonly issuer?: Issued;
  readonly md?: 'sha256' | 'sha1';
}

interface Issued {
  readonly cert: string;
  readonly key: string;
  readonly kind: KeyKind;
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Mints a root CA, an optional intermediate and a leaf in a temp dir removed in teardown. Keys come
 * from node:crypto; certificates are built in-process unless `via: 'openssl'` (or an extension only
 * openssl can make) runs `openssl ca`, so dates in the past work either way. Independent of src/trust.
 */
export async function mintPki(t: Test, opts: PkiOptions = {}): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'mosctl-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const now = Date.now();
  const defaultDates: Dates = { start: new Date(now - DAY), end: new Date(now + 365 * DAY) };
  const leafKind = opts.leafKey ?? 'rsa3072';
  const caKind = opts.caKey ?? 'rsa3072';
  const salt = opts.keySalt ?? '';
  const caExt = opts.caExt ?? DEFAULT_CA_EXT;
  const intermediateExt = opts.intermediateExt ?? DEFAULT_INTERMEDIATE_EXT;
  const leafExt = opts.leafExt ?? DEFAULT_LEAF_EXT;
  const via = opts.via === 'openssl' || ![...caExt, ...(opts.intermediate ? intermediateExt : []), ...leafExt].every(buildableExt) ? 'openssl' : 'node';
  // Start every key at once (each is generated off the main thread).
  void keyPem(caKind, 'ca', salt);
  if (opts.intermediate) void keyPem(caKind, 'intermediate', salt);
  void keyPem(leafKind, 'leaf', salt);

  const issue = via === 'openssl' ? await opensslIssuer(dir, salt) : (s: IssueSpec) => nodeIssue(dir, s, salt);
  // Serials as `openssl ca` hands them out from a serial file starting at 1000 (hex).
  const ca = await issue({ name: 'ca', cn: opts.caCn ?? 'mosctl test CA', kind: caKind, ext: caExt, dates: opts.caDates ?? defaultDates, serial: 0x1000 });
  const inter = opts.intermediate
    ? await issue({ name: 'intermediate', cn: 'mosctl test intermediate', kind: caKind, ext: intermediateExt, dates: opts.intermediateDates ?? defaultDates, issuer: ca, serial: 0x1001 })
    : undefined;
  const leaf = await issue({
    name: 'leaf',
    cn: opts.leafCn ?? 'release signer',
    kind: leafKind,
    ext: leafExt,
    dates: opts.leafDates ?? defaultDates,
    issuer: inter ?? ca,
    md: opts.leafMd ?? 'sha256',
    serial: inter ? 0x1002 : 0x1001,
  });
  const chainPem = join(dir, 'chain.pem');
  await writeFile(chainPem, leaf.certPem + (inter ? inter.certPem : ''));

  return {
    dir,
    caCert: ca.cert,
    caKey: ca.key,
    ...(inter ? { intermediateCert: inter.cert, intermediateKey: inter.key } : {}),
    leafCert: leaf.cert,
    leafKey: leaf.key,
    chainPem,
    leafKind,
    via,
    sign: via === 'openssl' ? (file, out = `${file}.signed`) => opensslSign(leaf.key, leafKind, file, out) : (file, out = `${file}.signed`) => nodeSign(leaf.keyPem, leafKind, file, out),
  };
}

async function writeKey(dir: string, s: IssueSpec, salt: string): Promise<{ key: string; keyPem: string }> {
  const key = join(dir, `${s.name}.key`);
  const pem = await keyPem(s.kind, s.name, salt);
  await writeFile(key, pem, { mode: 0o600 });
  return { key, keyPem: pem };
}

// ---- in-process certificates ----

/** An extension line parsed from openssl x509v3 config syntax, or undefined when we do not build it. */
type ExtSpec =
  | { kind: 'basicConstraints'; critical: boolean; ca: boolean; pathLen?: number }
  | { kind: 'keyUsage'; critical: boolean; flags: number }
  | { kind: 'extendedKeyUsage'; critical: boolean; oids: string[] }
  | { kind: 'subjectAltName'; critical: boolean; names: { type: 'email' | 'dns' | 'ip'; value: string }[] }
  | { kind: 'subjectKeyIdentifier'; critical: boolean; none?: true }
  | { kind: 'authorityKeyIdentifier'; critical: boolean; none?: true }
  | { kind: 'raw'; critical: boolean; oid: string; der: Buffer };

const KEY_USAGE: Record<string, number> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  nonRepudiation: x509.KeyUsageFlags.nonRepudiation,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  dataEncipherment: x509.KeyUsageFlags.dataEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
  encipherOnly: x509.KeyUsageFlags.encipherOnly,
  decipherOnly: x509.KeyUsageFlags.decipherOnly,
};
const EKU: Record<string, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
};

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Parses one openssl extension line; undefined for what the in-process path does not build. */
export function parseExt(line: string): ExtSpec | undefined {
  const eq = line.indexOf('=');
  if (eq < 0) return undefined;
  const name = line.slice(0, eq).trim();
  let value = line.slice(eq + 1).trim();
  const critical = value.startsWith('critical,');
  if (critical) value = value.slice('critical,'.length);
  const parts = value.split(',').map((p) => p.trim());
  switch (name) {
    case 'basicConstraints': {
      let ca: boolean | undefined;
      let pathLen: number | undefined;
      for (const p of parts) {
        if (p === 'CA:TRUE') ca = true;
        else if (p === 'CA:FALSE') ca = false;
        else if (/^pathlen:\d+$/.test(p)) pathLen = Number(p.slice(8));
        else return undefined;
      }
      if (ca === undefined) return undefined;
      return { kind: 'basicConstraints', critical, ca, ...(pathLen === undefined ? {} : { pathLen }) };
    }
    case 'keyUsage': {
      let flags = 0;
      for (const p of parts) {
        const f = KEY_USAGE[p];
        if (f === undefined) return undefined;
        flags |= f;
      }
      return { kind: 'keyUsage', critical, flags };
    }
    case 'extendedKeyUsage': {
      const oids = parts.map((p) => EKU[p] ?? (/^\d+(\.\d+)+$/.test(p) ? p : undefined));
      return oids.every((o) => o !== undefined) ? { kind: 'extendedKeyUsage', critical, oids: oids as string[] } : undefined;
    }
    case 'subjectAltName': {
      const names: { type: 'email' | 'dns' | 'ip'; value: string }[] = [];
      for (const p of parts) {
        const m = /^(email|DNS|IP):(.+)$/.exec(p);
        if (!m) return undefined;
        names.push({ type: m[1] === 'email' ? 'email' : m[1] === 'DNS' ? 'dns' : 'ip', value: m[2]! });
      }
      return { kind: 'subjectAltName', critical, names };
    }
    case 'subjectKeyIdentifier':
      return value === 'hash' ? { kind: 'subjectKeyIdentifier', critical } : value === 'none' ? { kind: 'subjectKeyIdentifier', critical, none: true } : undefined;
    case 'authorityKeyIdentifier':
      return value === 'keyid' ? { kind: 'authorityKeyIdentifier', critical } : value === 'none' ? { kind: 'authorityKeyIdentifier', critical, none: true } : undefined;
    default: {
      if (!/^\d+(\.\d+)+$/.test(name)) return undefined;
      const utf8 = /^ASN1:UTF8String:(.*)$/.exec(value);
      if (utf8) {
        const b = Buffer.from(utf8[1]!, 'utf8');
        return { kind: 'raw', critical, oid: name, der: Buffer.concat([Buffer.from([0x0c]), derLength(b.length), b]) };
      }
      const der = /^DER:((?:[0-9A-Fa-f]{2}:?)+)$/.exec(value);
      if (der) return { kind: 'raw', critical, oid: name, der: Buffer.from(der[1]!.replace(/:/g, ''), 'hex') };
      return undefined;
    }
  }
}

/** True when the in-process path builds this extension line (else the PKI is made by openssl). */
export function buildableExt(line: string): boolean {
  return parseExt(line) !== undefined;
}

function createPublicKeyDer(keyPemText: string): Buffer {
  return createPublicKey(keyPemText).export({ type: 'spki', format: 'der' });
}

/** SHA-1 of the subjectPublicKey BIT STRING contents: `subjectKeyIdentifier=hash` (RFC 5280 method 1). */
async function keyIdOf(spki: Buffer): Promise<string> {
  return Buffer.from(await new x509.PublicKey(spki).getKeyIdentifier('SHA-1')).toString('hex');
}

function signingParams(kind: KeyKind, md: 'sha256' | 'sha1'): { importAlg: object; signAlg: object } {
  if (kind.startsWith('rsa')) {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: md === 'sha1' ? 'SHA-1' : 'SHA-256' };
    return { importAlg: alg, signAlg: alg };
  }
  if (kind === 'ec256' || kind === 'ec384') {
    return { importAlg: { name: 'ECDSA', namedCurve: kind === 'ec256' ? 'P-256' : 'P-384' }, signAlg: { name: 'ECDSA', hash: md === 'sha1' ? 'SHA-1' : 'SHA-256' } };
  }
  return { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } };
}

function dn(cn: string): x509.JsonName {
  // openssl req -subj with the default string_mask (utf8only): UTF8String values, O before CN.
  return [{ '2.5.4.10': [{ utf8String: 'mosctl tests' }] }, { '2.5.4.3': [{ utf8String: cn }] }] as never;
}

async function nodeIssue(dir: string, s: IssueSpec, salt: string): Promise<Issued> {
  const { key, keyPem: pem } = await writeKey(dir, s, salt);
  const spki = createPublicKeyDer(pem);
  const issuerKind = s.issuer?.kind ?? s.kind;
  const issuerKeyPem = s.issuer?.keyPem ?? pem;
  const issuerCert = s.issuer ? new x509.X509Certificate(s.issuer.certPem) : undefined;
  const { importAlg, signAlg } = signingParams(issuerKind, s.md ?? 'sha256');
  const signingKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(issuerKeyPem).export({ type: 'pkcs8', format: 'der' }), importAlg as never, false, ['sign']);
  const specs = s.ext.map((line) => parseExt(line)!);
  // OpenSSL 3 adds subjectKeyIdentifier=hash, and authorityKeyIdentifier=keyid on a cert it does not
  // self-sign, after the configured ones unless the config names them (`none` suppresses).
  if (!specs.some((e) => e.kind === 'subjectKeyIdentifier')) specs.push({ kind: 'subjectKeyIdentifier', critical: false });
  if (s.issuer && !specs.some((e) => e.kind === 'authorityKeyIdentifier')) specs.push({ kind: 'authorityKeyIdentifier', critical: false });
  const extensions: x509.Extension[] = [];
  for (const e of specs) {
    switch (e.kind) {
      case 'basicConstraints':
        extensions.push(new x509.BasicConstraintsExtension(e.ca, e.pathLen, e.critical));
        break;
      case 'keyUsage':
        extensions.push(new x509.KeyUsagesExtension(e.flags, e.critical));
        break;
      case 'extendedKeyUsage':
        extensions.push(new x509.ExtendedKeyUsageExtension(e.oids, e.critical));
        break;
      case 'subjectAltName':
        extensions.push(new x509.SubjectAlternativeNameExtension(e.names, e.critical));
        break;
      case 'subjectKeyIdentifier':
        if (!e.none) extensions.push(new x509.SubjectKeyIdentifierExtension(await keyIdOf(spki), e.critical));
        break;
      case 'authorityKeyIdentifier': {
        if (e.none) break;
        // openssl copies the issuer's subjectKeyIdentifier, or hashes the issuer key when it has none.
        const ski = issuerCert?.getExtension(x509.SubjectKeyIdentifierExtension);
        const keyId = ski?.keyId ?? (await keyIdOf(issuerCert ? Buffer.from(issuerCert.publicKey.rawData) : spki));
        extensions.push(new x509.AuthorityKeyIdentifierExtension(keyId, e.critical));
        break;
      }
      case 'raw':
        extensions.push(new x509.Extension(e.oid, e.critical, e.der));
        break;
    }
  }
  const made = await x509.X509CertificateGenerator.create({
    serialNumber: s.serial.toString(16),
    subject: dn(s.cn),
    issuer: issuerCert ? issuerCert.subjectName : dn(s.cn),
    notBefore: s.dates.start,
    notAfter: s.dates.end,
    publicKey: spki,
    signingKey: signingKey as never,
    signingAlgorithm: signAlg as never,
    extensions,
  });
  const certPem = made.toString('pem') + '\n';
  const cert = join(dir, `${s.name}.pem`);
  await writeFile(cert, certPem);
  return { cert, key, kind: s.kind, certPem, keyPem: pem };
}

async function nodeSign(keyPemText: string, kind: KeyKind, file: string, out: string): Promise<string> {
  const md = kind === 'ed25519' ? null : kind === 'ec384' ? 'sha384' : 'sha256';
  await writeFile(out, cryptoSign(md, await readFile(file), createPrivateKey(keyPemText)));
  return out;
}

// ---- the openssl CLI ----

/** Issues with `openssl req` + `openssl ca` (-selfsign for the root) in `dir`. */
async function opensslIssuer(dir: string, salt: string): Promise<(s: IssueSpec) => Promise<Issued>> {
  await mkdir(join(dir, 'newcerts'));
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  const cnf = join(dir, 'ca.cnf');
  await writeFile(cnf, caConfig(dir));
  return async (s) => {
    const { key, keyPem: pem } = await writeKey(dir, s, salt);
    const cert = join(dir, `${s.name}.pem`);
    const csr = join(dir, `${s.name}.csr`);
    await openssl(['req', '-new', '-key', key, '-subj', `/O=mosctl tests/CN=${s.cn}`, '-out', csr]);
    const extFile = join(dir, `${s.name}.ext`);
    await writeFile(extFile, `[ext]\n${s.ext.join('\n')}\n`);
    const signer = s.issuer ?? { cert, key };
    await openssl([
      'ca', '-batch', '-config', cnf, '-notext', '-preserveDN', '-in', csr, '-out', cert,
      ...(s.issuer ? ['-cert', signer.cert] : ['-selfsign']),
      '-keyfile', signer.key,
      '-extfile', extFile, '-extensions', 'ext',
      '-startdate', caDate(s.dates.start), '-enddate', caDate(s.dates.end),
      '-md', s.md ?? 'sha256',
    ]);
    return { cert, key, kind: s.kind, certPem: await readFile(cert, 'utf8'), keyPem: pem };
  };
}

/** Signs `file` with `key` the way mos does (`openssl dgst -<hash> -sign`); Ed25519 via `pkeyutl -rawin`. */
export async function opensslSign(key: string, kind: KeyKind, file: string, out: string): Promise<string> {
  if (kind === 'ed25519') await openssl(['pkeyutl', '-sign', '-rawin', '-inkey', key, '-in', file, '-out', out]);
  else await openssl(['dgst', kind === 'ec384' ? '-sha384' : '-sha256', '-sign', key, '-out', out, file]);
  return out;
}

/** Days from now as a Date (negative: the past). */
export function daysFromNow(days: number): Date {
  return new Date(Date.now() + days * DAY);
}

/** A private RFC 3161 TSA minted with openssl (EC P-256 root and signer, critical timeStamping EKU). */
export interface Tsa {
  readonly dir: string;
  /** TSA signing cert then its root: what `tsaAnchors` takes. */
  readonly chainPem: string;
  /** Timestamps `file`'s bytes (`openssl ts -query -sha256 -cert` then `-reply`); returns the whole TimeStampResp DER. */
  stamp(file: string): Promise<Buffer>;
}

/** Mints a TSA in a temp dir removed in teardown. */
export async function mintTsa(t: Test): Promise<Tsa> {
  const pki = await mintPki(t, {
    caKey: 'ec256',
    leafKey: 'ec256',
    caCn: 'mosctl test TSA root',
    leafCn: 'mosctl test TSA',
    keySalt: 'tsa',
    leafExt: ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=critical,timeStamping', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'],
  });
  const dir = pki.dir;
  const chainPem = join(dir, 'tsa-chain.pem');
  await writeFile(chainPem, (await readFile(pki.leafCert, 'utf8')) + (await readFile(pki.caCert, 'utf8')));
  await writeFile(join(dir, 'tsaserial'), '01\n');
  const cnf = join(dir, 'tsa.cnf');
  await writeFile(
    cnf,
    [
      '[tsa]',
      'default_tsa = mini',
      '[mini]',
      `serial = ${dir}/tsaserial`,
      `signer_cert = ${pki.leafCert}`,
      `certs = ${pki.caCert}`,
      `signer_key = ${pki.leafKey}`,
      'signer_digest = sha256',
      'default_policy = 1.3.6.1.4.1.55555.9',
      'digests = sha256, sha384, sha512',
      'accuracy = secs:1',
      'ess_cert_id_alg = sha256',
      '',
    ].join('\n'),
  );
  let n = 0;
  return {
    dir,
    chainPem,
    stamp: async (file) => {
      n += 1;
      const tsq = join(dir, `req${n}.tsq`);
      const tsr = join(dir, `resp${n}.tsr`);
      await openssl(['ts', '-query', '-data', file, '-sha256', '-cert', '-out', tsq]);
      await openssl(['ts', '-reply', '-config', cnf, '-queryfile', tsq, '-out', tsr]);
      return readFile(tsr);
    },
  };
}
