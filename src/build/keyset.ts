import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { MosError, describeSystemError } from '../base/index.js';
import { exists, fsyncDir, readFileLimited, writeFileAtomic } from '../host/index.js';
import { MAX_PEM_BYTES, issueCa, issueCrossCert, issueLeaf } from '../trust/index.js';

/** Files of a keyset's manifest CA. */
export interface KeysetPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  /** `manifest-ca/cross.pem`: this CA certified by the keyset it replaces (written by `mosb keyset rotate`). */
  readonly crossCert: string;
}

/** Files of a project: signing cert and PKCS#8 key, product uuid, and the keyset CA that issued them. */
export interface ProjectPaths {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly uuid: string;
  readonly caCert: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MINUTE = 60_000;
const YEAR = 365 * 24 * 60 * MINUTE;

/** Validity of a certificate mosb issues at `now`: from 5 minutes before (clock skew between build host and machines) for `years`. */
export function validityFrom(now: Date, years: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now.getTime() - 5 * MINUTE), notAfter: new Date(now.getTime() + years * YEAR) };
}
/** Validity of keyset CAs and project certificates (mos's are long-lived build-host keys). */
export const CA_VALIDITY_YEARS = 20;
export const PROJECT_VALIDITY_YEARS = 10;

/** `$XDG_DATA_HOME/machine/trust/keys`, default `~/.local/share/machine/trust/keys` (mos's layout). */
export function keysRoot(dataHome?: string): string {
  const base = dataHome ?? (process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'));
  return join(base, 'machine', 'trust', 'keys');
}

function checkName(kind: 'keyset' | 'project', name: string): void {
  if (!NAME.test(name)) {
    throw new MosError({
      code: 'INPUT_INVALID',
      subject: `${kind} name "${name}"`,
      message: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  }
}

/** Splits `KEYSET:PROJECT` (mosb's `--project`); a malformed spec throws INPUT_INVALID. */
export function parseProjectSpec(spec: string): { keyset: string; project: string } {
  const parts = spec.split(':');
  if (parts.length !== 2) {
    throw new MosError({ code: 'INPUT_INVALID', subject: `project "${spec}"`, message: 'want KEYSET:PROJECT', hint: 'e.g. --project snakeoil:default' });
  }
  const [keyset, project] = parts as [string, string];
  checkName('keyset', keyset);
  checkName('project', project);
  return { keyset, project };
}

/** Paths of a keyset's manifest CA (no disk access). */
export function keysetPaths(opts: { keyset: string; dataHome?: string }): KeysetPaths {
  checkName('keyset', opts.keyset);
  const dir = join(keysRoot(opts.dataHome), opts.keyset);
  return { dir, caCert: join(dir, 'manifest-ca', 'cert.pem'), caKey: join(dir, 'manifest-ca', 'privkey.pem'), crossCert: join(dir, 'manifest-ca', 'cross.pem') };
}

/**
 * Paths of a project's signing material (no disk access): what `mosb manifest publish --project` reads.
 * With `site`, a site key's (`<keyset>/site/<name>/`): what `mosb bundle create --project` reads.
 */
export function projectPaths(opts: { keyset: string; project: string; dataHome?: string; site?: boolean }): ProjectPaths {
  checkName('project', opts.project);
  const ks = keysetPaths(opts);
  const dir = join(ks.dir, opts.site ? 'site' : 'manifest', opts.project);
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'privkey.pem'), uuid: join(dir, 'uuid'), caCert: ks.caCert };
}

/**
 * Creates `<keys>/<name>/manifest-ca/{cert.pem,privkey.pem}`: a self-signed RSA-3072 CA, key mode
 * 0600. Built in a temp dir and renamed into place, so it appears whole or not at all; an existing
 * keyset is never touched (ALREADY_EXISTS).
 */
export async function createKeyset(opts: { name: string; dataHome?: string; now?: Date }): Promise<KeysetPaths> {
  const paths = keysetPaths({ keyset: opts.name, ...(opts.dataHome !== undefined ? { dataHome: opts.dataHome } : {}) });
  await refuseExisting(paths.dir, `keyset "${opts.name}"`);
  const now = opts.now ?? new Date();
  const ca = await issueCa({
    name: `O=mosctl keyset ${opts.name}, CN=${opts.name} manifest CA`,
    ...validityFrom(now, CA_VALIDITY_YEARS),
  });
  await publishDir(paths.dir, `keyset "${opts.name}"`, async (tmp) => {
    await mkdir(join(tmp, 'manifest-ca'), { mode: 0o755 });
    await writeFileAtomic(join(tmp, 'manifest-ca', 'cert.pem'), ca.certPem, { mode: 0o644 });
    await writeFileAtomic(join(tmp, 'manifest-ca', 'privkey.pem'), ca.keyPem, { mode: 0o600 });
  });
  return paths;
}

/**
 * Creates `<keys>/<keyset>/manifest/<project>/{cert.pem,privkey.pem,uuid}`: an RSA-3072 signing
 * certificate issued by the keyset CA (digitalSignature, EKU codeSigning), PKCS#8 key mode 0600, a
 * random product uuid. Appears whole or not at all; refuses to overwrite (ALREADY_EXISTS).
 */
export async function createProject(opts: { keyset: string; project: string; dataHome?: string; now?: Date; site?: boolean }): Promise<ProjectPaths> {
  const paths = projectPaths(opts);
  const ks = keysetPaths(opts);
  let caCertPem: string;
  let caKeyPem: string;
  try {
    const pem = async (f: string) => (await readFileLimited(f, MAX_PEM_BYTES)).toString('utf8');
    [caCertPem, caKeyPem] = await Promise.all([pem(ks.caCert), pem(ks.caKey)]);
  } catch (e) {
    // A file that is there but not a regular file, or too large: its own error names it.
    if (e instanceof MosError && e.code === 'INPUT_INVALID') throw e;
    throw new MosError({
      code: 'TRUST_KEYSET_UNKNOWN',
      subject: ks.dir,
      message: `keyset "${opts.keyset}" has no readable manifest CA: ${describeSystemError(e)}`,
      hint: `create it with: mosb keyset add ${opts.keyset}`,
      cause: e,
    });
  }
  await refuseExisting(paths.dir, `project "${opts.keyset}:${opts.project}"`);
  const now = opts.now ?? new Date();
  let leaf: { certPem: string; keyPem: string };
  try {
    leaf = await issueLeaf({
      name: `O=mosctl keyset ${opts.keyset}, CN=${opts.project}`,
      ...validityFrom(now, PROJECT_VALIDITY_YEARS),
      caCertPem,
      caKeyPem,
      ...(opts.site ? { site: true } : {}),
    });
  } catch (e) {
    throw new MosError({ code: 'TRUST_KEY_INVALID', subject: ks.caKey, message: `cannot issue with this CA (an RSA PKCS#8 key is needed): ${e instanceof Error ? e.message : String(e)}`, cause: e });
  }
  await mkdir(join(paths.dir, '..'), { recursive: true, mode: 0o755 });
  // A keyset whose CA was rotated (`mosb keyset rotate`) carries its cross-certificate: signers append it, so
  // machines that still trust only the old CA accept what this project signs.
  const cross = await readCross(ks);
  await publishDir(paths.dir, `${opts.site ? 'site' : 'project'} "${opts.keyset}:${opts.project}"`, async (tmp) => {
    await writeFileAtomic(join(tmp, 'cert.pem'), leaf.certPem + (cross ?? ''), { mode: 0o644 });
    await writeFileAtomic(join(tmp, 'privkey.pem'), leaf.keyPem, { mode: 0o600 });
    await writeFileAtomic(join(tmp, 'uuid'), randomUUID(), { mode: 0o644 });
  });
  return paths;
}

async function readCross(ks: KeysetPaths): Promise<string | undefined> {
  if (!(await exists(ks.crossCert))) return undefined;
  return (await readFileLimited(ks.crossCert, MAX_PEM_BYTES)).toString('utf8');
}

/**
 * `mosb keyset rotate OLD NEW`: certifies keyset NEW's manifest CA with keyset OLD's CA (a
 * cross-certificate in `NEW/manifest-ca/cross.pem`). Projects created in NEW afterwards carry it after
 * their leaf, so machines whose initrd trusts only OLD accept manifests signed in NEW: a fleet moves to
 * the new CA with ordinary updates (the certificate is committed with each generation), and initrds
 * built later embed NEW directly. Refuses to replace an existing cross-certificate.
 */
export async function rotateKeyset(opts: { from: string; to: string; dataHome?: string; now?: Date }): Promise<{ crossCert: string; issuer: string; subject: string }> {
  const dh = opts.dataHome !== undefined ? { dataHome: opts.dataHome } : {};
  const oldKs = keysetPaths({ keyset: opts.from, ...dh });
  const newKs = keysetPaths({ keyset: opts.to, ...dh });
  if (opts.from === opts.to) throw new MosError({ code: 'USAGE', message: 'rotate from a keyset to another one', hint: 'mosb keyset rotate OLD NEW' });
  const pem = async (f: string, what: string): Promise<string> => {
    try {
      return (await readFileLimited(f, MAX_PEM_BYTES)).toString('utf8');
    } catch (e) {
      if (e instanceof MosError && e.code === 'INPUT_INVALID') throw e;
      throw new MosError({ code: 'TRUST_KEYSET_UNKNOWN', subject: f, message: `${what} is not readable: ${describeSystemError(e)}`, hint: 'create it with: mosb keyset add NAME', cause: e });
    }
  };
  const [oldCert, oldKey, newCert] = await Promise.all([pem(oldKs.caCert, `keyset "${opts.from}" CA`), pem(oldKs.caKey, `keyset "${opts.from}" CA key`), pem(newKs.caCert, `keyset "${opts.to}" CA`)]);
  if (await exists(newKs.crossCert)) {
    throw new MosError({ code: 'ALREADY_EXISTS', subject: newKs.crossCert, message: `keyset "${opts.to}" already has a cross-certificate`, hint: 'remove it yourself to certify the CA again' });
  }
  const now = opts.now ?? new Date();
  const cross = await issueCrossCert({
    subjectCaPem: newCert,
    issuerCertPem: oldCert,
    issuerKeyPem: oldKey,
    ...validityFrom(now, CA_VALIDITY_YEARS),
  });
  await writeFileAtomic(newKs.crossCert, cross, { mode: 0o644 });
  return { crossCert: newKs.crossCert, issuer: opts.from, subject: opts.to };
}

async function refuseExisting(dir: string, what: string): Promise<void> {
  if (await exists(dir)) {
    throw new MosError({ code: 'ALREADY_EXISTS', subject: dir, message: `${what} already exists; refusing to overwrite its keys`, hint: 'pick another name, or remove it yourself' });
  }
}

// Fills a temp dir beside `dir`, then renames it into place: a crash leaves a stray temp dir, never half a keyset.
export async function publishDir(dir: string, what: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const parent = join(dir, '..');
  const tmp = join(parent, `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(parent, { recursive: true, mode: 0o700 });
    await mkdir(tmp, { mode: 0o700 });
    await fill(tmp);
    // A racing creator may have won since refuseExisting; rename onto a non-empty dir fails.
    await refuseExisting(dir, what);
    await rename(tmp, dir);
    await fsyncDir(parent);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot create ${what}: ${describeSystemError(e)}`, cause: e });
  }
}
