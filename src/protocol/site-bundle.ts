import { MosError, sha256Digest } from '../base/index.js';
import { OCI_MANIFEST, parseImageManifest, parseRegistriesConf, verifyBytes, type ContentStore, type Descriptor } from '../oci/index.js';
import { DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES } from '../trust/index.js';

/**
 * Site bundles (README "Site bundles and commissioning"): the small signed document that carries a
 * site's settings beside a generic OS. What both mosb (create) and mosctl (verify, apply) speak: the
 * payload formats, and the bundle's OCI form (an artifact manifest whose one layer is the envelope).
 */
export const SITE_BUNDLE_ARTIFACT_TYPE = 'application/vnd.mosctl.site-bundle.v1';
export const SITE_BUNDLE_PAYLOAD_TYPE = 'application/vnd.mosctl.site-bundle.v1+json';
export const SITE_TRUST_PAYLOAD_TYPE = 'application/vnd.mosctl.site-trust.v1+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

export const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MAX_ENV = 256;
const MAX_CAS = 64;
const MAX_ROTATIONS = 16;

/**
 * What a bundle SOURCE (or mosb's OUT) names: an http(s) URL; an OCI reference (`oci:DIR:TAG`, or
 * `host[:port]/name:tag` — it has a colon and is not a path); else a file holding the envelope JSON.
 */
export function bundleLocation(text: string): 'url' | 'reference' | 'file' {
  if (/^https?:\/\//.test(text)) return 'url';
  if (text.startsWith('oci:')) return 'reference';
  return !text.startsWith('/') && !text.startsWith('.') && !text.endsWith('.json') && text.includes(':') ? 'reference' : 'file';
}

/** Where an uninstalled machine installs itself from. */
export interface ProvisionSource {
  /** An install SOURCE as `mosctl install` takes it (`oci:/rel:1.0` is taken relative to `device`). */
  readonly source: string;
  /** `LABEL=X`: a filesystem the initrd mounts read-only to read `source` from. */
  readonly device?: string;
}

/** The signed payload of a site bundle. */
export interface SiteBundle {
  readonly site: string;
  /** Monotonic: a machine refuses a bundle older than the one it recorded. */
  readonly version: number;
  readonly created: string;
  /** Transport CA certificates (PEM, one each) for the system trust store and mosctl's registry TLS. */
  readonly caCertificates: readonly string[];
  /** Environment settings (proxy, URLs) written as KEY=VALUE lines. */
  readonly env: Readonly<Record<string, string>>;
  /** containers-registries.conf v2 text: mirrors for mosctl and the OS. */
  readonly registriesConf?: string;
  /** containers auth.json / docker config.json document: registry credentials for mosctl. */
  readonly auth?: Readonly<Record<string, unknown>>;
  readonly provision?: ProvisionSource;
  /** Trust-set rotations (DSSE envelopes of {@link SiteTrustSet}), applied in version order. */
  readonly trust: readonly string[];
}

/** A site trust set: the CAs whose site certificates may sign bundles from its `version` on. */
export interface SiteTrustSet {
  readonly version: number;
  readonly cas: readonly string[];
  /** Until when bundles signed under the previous set still verify (the overlap window). */
  readonly overlapUntil: string;
  readonly created: string;
}

function invalid(subject: string, message: string, hint?: string): MosError {
  return new MosError({ code: 'INPUT_INVALID', subject, message, ...(hint ? { hint } : {}) });
}

function parseObject(bytes: Uint8Array, subject: string, kind: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw invalid(subject, `payload is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid(subject, 'payload is not a JSON object');
  const d = doc as Record<string, unknown>;
  if (d['apiVersion'] !== 'mosctl/v1' || d['kind'] !== kind) throw invalid(subject, `payload is not apiVersion mosctl/v1, kind ${kind}`);
  return d;
}

function refuseUnknown(d: Record<string, unknown>, known: readonly string[], subject: string): void {
  const extra = Object.keys(d).find((k) => !known.includes(k));
  if (extra !== undefined) throw invalid(`${subject}: ${extra}`, 'unknown field');
}

function version(v: unknown, subject: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalid(`${subject}: version`, `must be an integer >= ${min}`);
  return v;
}

function timestamp(v: unknown, field: string): string {
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v)) || !/^\d{4}-\d\d-\d\dT/.test(v)) throw invalid(field, 'must be an RFC 3339 time');
  return v;
}

function pemList(v: unknown, field: string, max: number): string[] {
  if (!Array.isArray(v)) throw invalid(field, 'must be a list of PEM certificates');
  if (v.length > max) throw invalid(field, `${v.length} certificates, more than ${max}`);
  return v.map((p, i) => {
    if (typeof p !== 'string' || (p.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length !== 1) throw invalid(`${field}[${i}]`, 'must be one PEM certificate');
    return p;
  });
}

/** Checks an environment setting (the bundle's `env`, `mosb bundle create --env`). */
export function checkEnvEntry(key: string, value: string, subject: string): void {
  if (!ENV_KEY.test(key)) throw invalid(`${subject}: ${key}`, 'is not an environment variable name (letters, digits, _; not starting with a digit)');
  if (/[\n\r\0]/.test(value)) throw invalid(`${subject}: ${key}`, 'value has a newline or NUL');
  if (Buffer.byteLength(value) > 4096) throw invalid(`${subject}: ${key}`, 'value is longer than 4096 bytes');
}

/** Checks a provisioning source's shape: `LABEL=` device names, an install SOURCE with no whitespace. */
export function checkProvision(p: unknown, subject: string): ProvisionSource {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw invalid(subject, 'must be an object with source (and device)');
  const o = p as Record<string, unknown>;
  refuseUnknown(o, ['source', 'device'], subject);
  if (typeof o['source'] !== 'string' || !/^\S{1,1024}$/.test(o['source'])) throw invalid(`${subject}.source`, 'must be an install SOURCE (oci:DIR:TAG or a registry reference)');
  if (o['device'] !== undefined && (typeof o['device'] !== 'string' || !/^LABEL=[A-Za-z0-9._-]{1,32}$/.test(o['device']))) {
    throw invalid(`${subject}.device`, 'must be LABEL=NAME (letters, digits, ".", "_", "-"; up to 32)');
  }
  if (o['device'] !== undefined && !o['source'].startsWith('oci:')) throw invalid(`${subject}.device`, 'a device only makes sense with an oci: source');
  return { source: o['source'], ...(o['device'] !== undefined ? { device: o['device'] as string } : {}) };
}

/**
 * Parses and checks a site bundle payload (the exact signed bytes). Every field is checked for shape,
 * registries.conf as TOML with the registries rules. Throws INPUT_INVALID naming the field.
 */
export function parseSiteBundle(bytes: Uint8Array, subject: string): SiteBundle {
  const d = parseObject(bytes, subject, 'SiteBundle');
  refuseUnknown(d, ['apiVersion', 'kind', 'site', 'version', 'created', 'caCertificates', 'env', 'registriesConf', 'auth', 'provision', 'trust'], subject);
  if (typeof d['site'] !== 'string' || !SITE_NAME.test(d['site'])) throw invalid(`${subject}: site`, 'must be 1-64 letters, digits, ".", "_" or "-"');
  const env = d['env'] ?? {};
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw invalid(`${subject}: env`, 'must be an object of strings');
  const entries = Object.entries(env as Record<string, unknown>);
  if (entries.length > MAX_ENV) throw invalid(`${subject}: env`, `${entries.length} settings, more than ${MAX_ENV}`);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw invalid(`${subject}: env.${k}`, 'must be a string');
    checkEnvEntry(k, v, `${subject}: env`);
  }
  const conf = d['registriesConf'];
  if (conf !== undefined) {
    if (typeof conf !== 'string') throw invalid(`${subject}: registriesConf`, 'must be TOML text');
    parseRegistriesConf(conf, `${subject}: registriesConf`);
  }
  const auth = d['auth'];
  if (auth !== undefined) checkAuth(auth, `${subject}: auth`);
  const trust = d['trust'] ?? [];
  if (!Array.isArray(trust) || trust.length > MAX_ROTATIONS || trust.some((t) => typeof t !== 'string')) {
    throw invalid(`${subject}: trust`, `must be a list of at most ${MAX_ROTATIONS} trust-set envelopes (JSON text)`);
  }
  return {
    site: d['site'],
    version: version(d['version'], subject, 1),
    created: timestamp(d['created'], `${subject}: created`),
    caCertificates: pemList(d['caCertificates'] ?? [], `${subject}: caCertificates`, MAX_CAS),
    env: Object.fromEntries(entries) as Record<string, string>,
    ...(conf !== undefined ? { registriesConf: conf as string } : {}),
    ...(auth !== undefined ? { auth: auth as Record<string, unknown> } : {}),
    ...(d['provision'] !== undefined ? { provision: checkProvision(d['provision'], `${subject}: provision`) } : {}),
    trust: trust as string[],
  };
}

/** Checks an auth.json document: `{"auths": {"host": {"auth": "base64"} ...}}` (credHelpers are not carried). */
export function checkAuth(auth: unknown, subject: string): void {
  if (typeof auth !== 'object' || auth === null || Array.isArray(auth)) throw invalid(subject, 'must be an auth.json object');
  const a = auth as Record<string, unknown>;
  refuseUnknown(a, ['auths'], subject);
  const auths = a['auths'];
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw invalid(`${subject}.auths`, 'must be an object keyed by registry');
  for (const [host, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw invalid(`${subject}.auths["${host}"]`, 'must be an object');
    for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
      if (!['auth', 'username', 'password', 'identitytoken', 'registrytoken'].includes(k) || typeof v !== 'string') {
        throw invalid(`${subject}.auths["${host}"].${k}`, 'unknown field or not a string');
      }
    }
  }
}

/** Parses a trust-set payload; throws INPUT_INVALID naming the field. */
export function parseTrustSet(bytes: Uint8Array, subject: string): SiteTrustSet {
  const d = parseObject(bytes, subject, 'SiteTrust');
  refuseUnknown(d, ['apiVersion', 'kind', 'version', 'cas', 'overlapUntil', 'created'], subject);
  const cas = pemList(d['cas'], `${subject}: cas`, MAX_CAS);
  if (cas.length === 0) throw invalid(`${subject}: cas`, 'must name at least one CA');
  return { version: version(d['version'], subject, 1), cas, overlapUntil: timestamp(d['overlapUntil'], `${subject}: overlapUntil`), created: timestamp(d['created'], `${subject}: created`) };
}

/** The artifact manifest that carries an envelope in an OCI store (layout or registry). */
export function bundleArtifact(envelope: Uint8Array): { manifest: Uint8Array; desc: Descriptor; config: Uint8Array; configDesc: Descriptor; layerDesc: Descriptor } {
  const config = new TextEncoder().encode('{}');
  const configDesc: Descriptor = { mediaType: EMPTY_CONFIG, digest: sha256Digest(config), size: config.byteLength };
  const layerDesc: Descriptor = { mediaType: DSSE_MEDIA_TYPE, digest: sha256Digest(envelope), size: envelope.byteLength };
  const manifest = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: SITE_BUNDLE_ARTIFACT_TYPE, config: configDesc, layers: [layerDesc] }),
  );
  return { manifest, desc: { mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.byteLength, artifactType: SITE_BUNDLE_ARTIFACT_TYPE }, config, configDesc, layerDesc };
}

/** Stores a bundle envelope under `tag` in `store` (blobs first, the tag last). */
export async function pushBundle(store: ContentStore, envelope: Uint8Array, tag: string): Promise<Descriptor> {
  const a = bundleArtifact(envelope);
  await store.pushBlob(a.configDesc, async function* () {
    yield a.config;
  }());
  await store.pushBlob(a.layerDesc, async function* () {
    yield envelope;
  }());
  await store.pushManifest(a.desc, a.manifest, { tag });
  return a.desc;
}

/** Reads a bundle envelope's bytes from `reference` (tag or digest) in `store`; the artifact type is checked. */
export async function fetchBundle(store: ContentStore, reference: string, subject: string): Promise<Uint8Array> {
  const desc = await store.resolve(reference);
  const manifest = parseImageManifest(await store.fetchBytes(desc), subject);
  if (manifest.artifactType !== SITE_BUNDLE_ARTIFACT_TYPE) {
    throw new MosError({ code: 'TRUST_BUNDLE_INVALID', subject, message: `is not a site bundle (artifactType ${manifest.artifactType ?? 'none'}, want ${SITE_BUNDLE_ARTIFACT_TYPE})` });
  }
  const layer = manifest.layers.length === 1 ? manifest.layers[0]! : undefined;
  if (!layer || layer.mediaType !== DSSE_MEDIA_TYPE) throw new MosError({ code: 'TRUST_BUNDLE_INVALID', subject, message: `must have one layer of type ${DSSE_MEDIA_TYPE}` });
  if (layer.size > MAX_ENVELOPE_BYTES) throw new MosError({ code: 'TRUST_BUNDLE_INVALID', subject, message: `envelope is ${layer.size} bytes, more than ${MAX_ENVELOPE_BYTES}` });
  const bytes = await store.fetchBytes(layer);
  verifyBytes(bytes, layer);
  return bytes;
}
