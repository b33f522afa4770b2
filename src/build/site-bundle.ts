import { MosError, parseReference, sha256Hex, type Logger, type RegistryAccess } from '../base/index.js';
import { readFileLimited, writeFileAtomic } from '../host/index.js';
import { openReference } from '../oci/index.js';
import {
  SITE_BUNDLE_PAYLOAD_TYPE, SITE_TRUST_PAYLOAD_TYPE, bundleLocation, checkAuth, checkEnvEntry, checkProvision, parseSiteBundle, parseTrustSet, pushBundle,
} from '../protocol/index.js';
import {
  MAX_ENVELOPE_BYTES, MAX_PEM_BYTES, parseCaBundle, parseEnvelope, signEnvelope, verifyEnvelopeSignatures, type SignerInfo, type TrustAnchors,
} from '../trust/index.js';
import { keysetPaths, parseProjectSpec, projectPaths } from './keyset.js';

const MAX_CONF_BYTES = 1024 * 1024;

/** Options of {@link createSiteBundle} (`mosb bundle create`). */
export interface CreateSiteBundleOptions {
  /** `KEYSET:SITE`: the site key made by `mosb project add KEYSET:SITE --site`. */
  readonly project: string;
  readonly version: number;
  /** Site name in the bundle; default the SITE of `project`. */
  readonly site?: string;
  /** Transport CA certificate files (PEM; each may hold several). */
  readonly caFiles?: readonly string[];
  /** `KEY=VALUE` settings. */
  readonly env?: readonly string[];
  readonly registriesConf?: string;
  readonly authFile?: string;
  readonly provision?: string;
  readonly provisionDevice?: string;
  /** Trust-set rotation envelopes (`mosb bundle rotate`), carried in version order. */
  readonly trustFiles?: readonly string[];
  /** A file path (the envelope JSON), `oci:DIR:TAG`, or a registry reference. */
  readonly out: string;
  readonly dataHome?: string;
  readonly access?: RegistryAccess;
  readonly log?: Logger;
  readonly now?: Date;
}

export interface CreateSiteBundleResult {
  readonly out: string;
  readonly site: string;
  readonly version: number;
  /** sha256 hex of the envelope bytes (what a machine records). */
  readonly digest: string;
  readonly signer: string;
  readonly bytes: number;
}

async function readText(file: string, max: number): Promise<string> {
  return (await readFileLimited(file, max)).toString('utf8');
}

/** Reads a site (or project) key and certificate, checking the certificate chains to its keyset CA with the site EKU. */
async function siteSigner(spec: string, dataHome: string | undefined): Promise<{ keyPem: string; certPem: string; caPem: string; site: string }> {
  const { keyset, project } = parseProjectSpec(spec);
  const dh = dataHome !== undefined ? { dataHome } : {};
  const paths = projectPaths({ keyset, project, site: true, ...dh });
  const read = async (f: string, what: string): Promise<string> => {
    try {
      return await readText(f, MAX_PEM_BYTES);
    } catch (e) {
      if (e instanceof MosError && e.code === 'NOT_FOUND') {
        const isProject = (await readFileLimited(projectPaths({ keyset, project, ...dh }).cert, MAX_PEM_BYTES).then(() => true, () => false));
        throw new MosError({
          code: 'TRUST_KEYSET_UNKNOWN',
          subject: f,
          message: isProject
            ? `"${spec}" is a manifest signing project, not a site key: a manifest key never signs site bundles`
            : `keyset "${keyset}" has no site key "${project}" (${what} missing)`,
          hint: `create one with: mosb project add ${keyset}:${project}${isProject ? '-site' : ''} --site`,
          cause: e,
        });
      }
      throw e;
    }
  };
  const [keyPem, certPem, caPem] = await Promise.all([read(paths.key, 'key'), read(paths.cert, 'certificate'), read(keysetPaths({ keyset, ...dh }).caCert, 'keyset CA')]);
  return { keyPem, certPem, caPem, site: project };
}

/** Signs `payload` and checks the result verifies as a site envelope under `caPem` (refuses a manifest key early). */
function signChecked(payloadType: string, payload: Uint8Array, signers: { keyPem: string; certPem: string; caPem: string; name: string }[], now: Date, subject: string): { bytes: Uint8Array; signer: SignerInfo } {
  const envelope = signEnvelope(payloadType, payload, signers.map((s) => ({ keyPem: s.keyPem, certPem: s.certPem, subject: s.name })));
  const bytes = new TextEncoder().encode(`${JSON.stringify(envelope)}\n`);
  const parsed = parseEnvelope(bytes, subject, payloadType);
  let first: SignerInfo | undefined;
  for (const s of signers) {
    const r = verifyEnvelopeSignatures(parsed, parseCaBundle(s.caPem, `${s.name} keyset CA`), now, subject);
    if (r.verified.length === 0) {
      throw new MosError({ code: 'TRUST_CERT_INVALID', subject: s.name, message: `does not sign as a site key under its keyset CA: ${r.failures.join('; ')}` });
    }
    first ??= r.verified[0]!.signer;
  }
  return { bytes, signer: first! };
}

/** Writes envelope bytes to OUT: a file, or an OCI artifact in a layout or registry. */
async function writeOut(out: string, bytes: Uint8Array, access: RegistryAccess, log: Logger | undefined): Promise<void> {
  if (bundleLocation(out) === 'reference') {
    parseReference(out);
    const opened = await openReference(out, { ...access, create: true, ...(log ? { log } : {}) });
    if (opened.reference === undefined || opened.reference.startsWith('sha256:')) {
      throw new MosError({ code: 'USAGE', subject: out, message: 'needs a tag to store the bundle under', hint: 'e.g. oci:/srv/site:bundle-3' });
    }
    await pushBundle(opened.store, bytes, opened.reference);
    return;
  }
  await writeFileAtomic(out, bytes, { mode: 0o644 });
}

/**
 * `mosb bundle create`: reads the site's settings, checks each like a machine will (the payload goes
 * through the machine's own parser), signs it as a DSSE envelope with the site key and writes it. Every
 * input is checked before anything is written.
 */
export async function createSiteBundle(opts: CreateSiteBundleOptions): Promise<CreateSiteBundleResult> {
  const now = opts.now ?? new Date();
  const signer = await siteSigner(opts.project, opts.dataHome);
  const site = opts.site ?? signer.site;
  const cas: string[] = [];
  for (const f of opts.caFiles ?? []) {
    const anchors = parseCaBundle(await readFileLimited(f, MAX_PEM_BYTES), f);
    for (const c of anchors.certs) cas.push(`-----BEGIN CERTIFICATE-----\n${c.der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`);
  }
  const env: Record<string, string> = {};
  for (const kv of opts.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new MosError({ code: 'USAGE', subject: `--env ${kv}`, message: 'want KEY=VALUE' });
    const [k, v] = [kv.slice(0, i), kv.slice(i + 1)];
    checkEnvEntry(k, v, '--env');
    env[k] = v;
  }
  const registriesConf = opts.registriesConf !== undefined ? await readText(opts.registriesConf, MAX_CONF_BYTES) : undefined;
  let auth: unknown;
  if (opts.authFile !== undefined) {
    try {
      auth = JSON.parse(await readText(opts.authFile, MAX_CONF_BYTES));
    } catch (e) {
      if (e instanceof MosError) throw e;
      throw new MosError({ code: 'INPUT_INVALID', subject: opts.authFile, message: 'is not JSON', cause: e });
    }
    checkAuth(auth, opts.authFile);
  }
  if (opts.provisionDevice !== undefined && opts.provision === undefined) throw new MosError({ code: 'USAGE', message: '--provision-device needs --provision' });
  const provision = opts.provision !== undefined
    ? checkProvision({ source: opts.provision, ...(opts.provisionDevice !== undefined ? { device: opts.provisionDevice } : {}) }, '--provision')
    : undefined;
  const trust: string[] = [];
  for (const f of opts.trustFiles ?? []) {
    const text = await readText(f, MAX_ENVELOPE_BYTES);
    parseTrustSet(parseEnvelope(new TextEncoder().encode(text), f, SITE_TRUST_PAYLOAD_TYPE).payload, f);
    trust.push(text.trimEnd());
  }
  const doc = {
    apiVersion: 'mosctl/v1',
    kind: 'SiteBundle',
    site,
    version: opts.version,
    created: now.toISOString(),
    caCertificates: cas,
    env,
    ...(registriesConf !== undefined ? { registriesConf } : {}),
    ...(auth !== undefined ? { auth } : {}),
    ...(provision ? { provision } : {}),
    ...(trust.length ? { trust } : {}),
  };
  const payload = new TextEncoder().encode(JSON.stringify(doc));
  parseSiteBundle(payload, 'bundle'); // the machine's own checks, before signing
  const { bytes, signer: who } = signChecked(SITE_BUNDLE_PAYLOAD_TYPE, payload, [{ ...signer, name: opts.project }], now, 'bundle');
  await writeOut(opts.out, bytes, opts.access ?? {}, opts.log);
  return { out: opts.out, site, version: opts.version, digest: sha256Hex(bytes), signer: who.subject, bytes: bytes.byteLength };
}

/** Options of {@link createTrustRotation} (`mosb bundle rotate`). */
export interface CreateTrustRotationOptions {
  /** `KEYSET:SITE` of the current trust set (its site key signs). */
  readonly from: string;
  /** `KEYSET:SITE` of the next set: its keyset CA becomes the set, its site key signs too. */
  readonly to: string;
  /** The new set's version: the machine's current trust-set version + 1. */
  readonly version: number;
  /** Days the previous set still verifies bundles. */
  readonly overlapDays: number;
  readonly out: string;
  readonly dataHome?: string;
  readonly now?: Date;
}

/**
 * `mosb bundle rotate`: the next site trust set (the CA of `to`'s keyset), signed by the current set's
 * site key and the next set's site key (both must agree, as in TUF's root rotation). Written as a file
 * that `mosb bundle create --trust` carries to the machines.
 */
export async function createTrustRotation(opts: CreateTrustRotationOptions): Promise<{ out: string; version: number; overlapUntil: string; digest: string }> {
  const now = opts.now ?? new Date();
  const [from, to] = await Promise.all([siteSigner(opts.from, opts.dataHome), siteSigner(opts.to, opts.dataHome)]);
  const overlapUntil = new Date(now.getTime() + opts.overlapDays * 86_400_000).toISOString();
  const doc = { apiVersion: 'mosctl/v1', kind: 'SiteTrust', version: opts.version, cas: [to.caPem], overlapUntil, created: now.toISOString() };
  const payload = new TextEncoder().encode(JSON.stringify(doc));
  parseTrustSet(payload, 'trust set');
  const { bytes } = signChecked(SITE_TRUST_PAYLOAD_TYPE, payload, [{ ...from, name: opts.from }, { ...to, name: opts.to }], now, 'trust set');
  await writeFileAtomic(opts.out, bytes, { mode: 0o644 });
  return { out: opts.out, version: opts.version, overlapUntil, digest: sha256Hex(bytes) };
}

/**
 * Checks a bundle file as a machine trusting `anchors` alone (trust set 0) would: envelope, payload and a
 * site-key signature that chains to them at `now`. What `mosb mkboot --site-bundle` runs before it writes
 * (the bytes it returns are the ones checked, and the ones to write).
 */
export async function checkSiteBundleFile(file: string, anchors: TrustAnchors, now: Date): Promise<{ site: string; version: number; bytes: Uint8Array }> {
  const bytes = await readFileLimited(file, MAX_ENVELOPE_BYTES);
  const parsed = parseEnvelope(bytes, file, SITE_BUNDLE_PAYLOAD_TYPE);
  const bundle = parseSiteBundle(parsed.payload, file);
  const r = verifyEnvelopeSignatures(parsed, anchors, now, file);
  if (r.verified.length === 0) {
    throw new MosError({ code: 'TRUST_SIGNATURE_INVALID', subject: file, message: `no signature verifies as a site bundle under ${anchors.subject}: ${r.failures.join('; ')}` });
  }
  return { site: bundle.site, version: bundle.version, bytes };
}
