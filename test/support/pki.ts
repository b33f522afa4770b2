import type { Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../../src/host/index.js';

/** Key kinds the openssl CLI mints: `rsa3072` is mos's default. */
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
  /** Signs `file` with the leaf key via `openssl dgst` (`pkeyutl -rawin` for Ed25519); returns the signature path. */
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

/** A PEM private key of `kind`, minted once per process per (role, kind, salt). */
export function keyPem(kind: KeyKind, role: string, salt = ''): Promise<string> {
  const id = `${role}:${kind}:${salt}`;
  let p = keyCache.get(id);
  if (!p) {
    const alg: Record<KeyKind, string[]> = {
      rsa3072: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'],
      rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
      rsa1024: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
      ec256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      ec384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
      ed25519: ['-algorithm', 'ED25519'],
    };
    p = openssl(['genpkey', ...alg[kind]]);
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

/**
 * Mints a root CA, an optional intermediate and a leaf with the openssl CLI (`openssl ca`, so dates
 * in the past work) in a temp dir removed in teardown. Independent of src/trust: it is the oracle.
 */
export async function mintPki(t: Test, opts: PkiOptions = {}): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'mosctl-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'newcerts'));
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  const cnf = join(dir, 'ca.cnf');
  await writeFile(cnf, caConfig(dir));
  const now = Date.now();
  const defaultDates: Dates = { start: new Date(now - DAY), end: new Date(now + 365 * DAY) };
  const leafKind = opts.leafKey ?? 'rsa3072';
  const caKind = opts.caKey ?? 'rsa3072';
  const salt = opts.keySalt ?? '';

  const issue = async (p: {
    name: string;
    cn: string;
    kind: KeyKind;
    ext: readonly string[];
    dates: Dates;
    issuer?: { cert: string; key: string };
    md?: string;
  }): Promise<{ cert: string; key: string }> => {
    const key = join(dir, `${p.name}.key`);
    const cert = join(dir, `${p.name}.pem`);
    await writeFile(key, await keyPem(p.kind, p.name, salt), { mode: 0o600 });
    const csr = join(dir, `${p.name}.csr`);
    await openssl(['req', '-new', '-key', key, '-subj', `/O=mosctl tests/CN=${p.cn}`, '-out', csr]);
    const extFile = join(dir, `${p.name}.ext`);
    await writeFile(extFile, `[ext]\n${p.ext.join('\n')}\n`);
    const signer = p.issuer ?? { cert, key };
    await openssl([
      'ca', '-batch', '-config', cnf, '-notext', '-preserveDN', '-in', csr, '-out', cert,
      ...(p.issuer ? ['-cert', signer.cert] : ['-selfsign']),
      '-keyfile', signer.key,
      '-extfile', extFile, '-extensions', 'ext',
      '-startdate', caDate(p.dates.start), '-enddate', caDate(p.dates.end),
      '-md', p.md ?? 'sha256',
    ]);
    return { cert, key };
  };

  const ca = await issue({ name: 'ca', cn: opts.caCn ?? 'mosctl test CA', kind: caKind, ext: opts.caExt ?? DEFAULT_CA_EXT, dates: opts.caDates ?? defaultDates });
  const inter = opts.intermediate
    ? await issue({
        name: 'intermediate',
        cn: 'mosctl test intermediate',
        kind: caKind,
        ext: opts.intermediateExt ?? DEFAULT_INTERMEDIATE_EXT,
        dates: opts.intermediateDates ?? defaultDates,
        issuer: ca,
      })
    : undefined;
  const leaf = await issue({
    name: 'leaf',
    cn: opts.leafCn ?? 'release signer',
    kind: leafKind,
    ext: opts.leafExt ?? DEFAULT_LEAF_EXT,
    dates: opts.leafDates ?? defaultDates,
    issuer: inter ?? ca,
    md: opts.leafMd ?? 'sha256',
  });
  const chainPem = join(dir, 'chain.pem');
  await writeFile(chainPem, (await readFile(leaf.cert, 'utf8')) + (inter ? await readFile(inter.cert, 'utf8') : ''));

  return {
    dir,
    caCert: ca.cert,
    caKey: ca.key,
    ...(inter ? { intermediateCert: inter.cert, intermediateKey: inter.key } : {}),
    leafCert: leaf.cert,
    leafKey: leaf.key,
    chainPem,
    leafKind,
    sign: (file, out = `${file}.signed`) => opensslSign(leaf.key, leafKind, file, out),
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
