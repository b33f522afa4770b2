import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, parseReference, sha256Hex, type Logger, type RegistryAccess } from '../base/index.js';
import { ensureDir, exists, readFileLimited, refuseOutwardSymlinks, writeFileAtomic } from '../host/index.js';
import { lockConfig } from '../config/index.js';
import { httpGet, openReference } from '../oci/index.js';
import {
  SITE_BUNDLE_PAYLOAD_TYPE, SITE_TRUST_PAYLOAD_TYPE, bundleLocation, fetchBundle, parseSiteBundle, parseTrustSet, type ProvisionSource, type SiteBundle, type SiteTrustSet,
} from '../protocol/index.js';
import {
  MAX_ENVELOPE_BYTES, parseCaBundle, parseEnvelope, verifyEnvelopeSignatures, type ParsedEnvelope, type SignerInfo, type TrustAnchors,
} from '../trust/index.js';
import { SITE_DIR, SITE_FILES, sitePaths, siteFilesUnder, systemPaths } from './paths.js';
import { readStateFile } from './state-file.js';
import { loadAnchors } from './trust-policy.js';

/** What `config/site/state.json` records: the bundle in force and the trust sets it was checked under. */
export interface SiteState {
  readonly site: string;
  readonly version: number;
  /** sha256 hex of the accepted envelope's bytes: `config/site/bundles/<hex>.json`. */
  readonly digest: string;
  readonly acceptedAt: string;
  /** Where it came from (a file, a medium, an operator's SOURCE). */
  readonly source: string;
  /** Accepted trust-set rotations in version order (version 0 is the manifest CA): `config/site/trust/<version>.json`. */
  readonly rotations: readonly { readonly version: number; readonly digest: string; readonly acceptedAt: string }[];
  /** Trust sets whose overlap window ended, and when that was recorded. */
  readonly dropped: readonly { readonly version: number; readonly at: string }[];
  /** Inputs that appeared after commissioning and were not used (newest last, at most 20). */
  readonly ignored: readonly { readonly at: string; readonly source: string; readonly reason: string }[];
}

const MAX_STATE_BYTES = 1024 * 1024;
const MAX_IGNORED = 20;

/** A bundle that verified: its payload, who signed it, and the trust-set version that vouched for it. */
export interface VerifiedBundle {
  readonly bundle: SiteBundle;
  readonly digest: string;
  readonly signer: SignerInfo;
  /** The trust set the signer chains to (0: the manifest CA). */
  readonly trustVersion: number;
  /** Rotations the bundle carried that were new to the machine (accepted with it). */
  readonly newRotations: readonly { version: number; bytes: Uint8Array; digest: string }[];
  readonly dropped: readonly number[];
}

/** One trust set in force: its CAs as anchors; the previous one verifies until the overlap ends. */
interface TrustChain {
  readonly sets: { version: number; anchors: TrustAnchors; overlapUntil?: Date }[];
}

function isState(v: unknown): v is SiteState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return typeof s['site'] === 'string' && typeof s['version'] === 'number' && typeof s['digest'] === 'string' && /^[0-9a-f]{64}$/.test(s['digest'])
    && typeof s['acceptedAt'] === 'string' && typeof s['source'] === 'string' && Array.isArray(s['rotations']) && Array.isArray(s['dropped']) && Array.isArray(s['ignored'])
    && (s['rotations'] as unknown[]).every((r) => typeof r === 'object' && r !== null && typeof (r as { version?: unknown }).version === 'number' && /^[0-9a-f]{64}$/.test(String((r as { digest?: unknown }).digest)));
}

/** The recorded state, or undefined when the machine has accepted no bundle (it is uncommissioned). */
export async function readSiteState(root: string): Promise<SiteState | undefined> {
  return readStateFile(sitePaths(root).state, {
    maxBytes: MAX_STATE_BYTES,
    valid: isState,
    shape: 'a site-bundle record (site, version, digest, acceptedAt, source, rotations, dropped, ignored)',
    hint: 'restore it, or remove config/site/ to let the machine take a bundle again',
  });
}

/**
 * Expands `${uuid}`, `${serial}` and `${mac}` in a command-line bundle URL (README "Commissioning"): the
 * SMBIOS product UUID and serial (`/sys/class/dmi/id/product_uuid`, `product_serial`), and the MAC of the
 * first network interface by name that is a device (`/sys/class/net/<if>/device`), not loopback, and not
 * all zeros. A variable that cannot be found, or an unknown one, is INPUT_INVALID naming it.
 */
export async function expandMachineVars(text: string, sysfs = '/sys'): Promise<string> {
  const names = [...text.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]!);
  const values: Record<string, string> = {};
  for (const name of new Set(names)) {
    const read = async (f: string): Promise<string | undefined> => (await readFile(join(sysfs, f), 'utf8').catch(() => undefined))?.trim() || undefined;
    let v: string | undefined;
    if (name === 'uuid') v = (await read('class/dmi/id/product_uuid'))?.toLowerCase();
    else if (name === 'serial') v = await read('class/dmi/id/product_serial');
    else if (name === 'mac') {
      const ifs = (await readdir(join(sysfs, 'class/net')).catch(() => [] as string[])).sort();
      for (const i of ifs) {
        const mac = await read(`class/net/${i}/address`);
        if (i === 'lo' || !mac || /^(00:){5}00$/.test(mac) || !(await exists(join(sysfs, 'class/net', i, 'device')))) continue;
        v = mac.toLowerCase();
        break;
      }
    } else throw new MosError({ code: 'INPUT_INVALID', subject: text, message: `unknown variable \${${name}}`, hint: 'use ${uuid}, ${serial} or ${mac}' });
    if (v === undefined) throw new MosError({ code: 'INPUT_INVALID', subject: text, message: `this machine has no ${name} to put in \${${name}}`, hint: 'see README "Commissioning"' });
    if (!/^[A-Za-z0-9:._-]+$/.test(v)) throw new MosError({ code: 'INPUT_INVALID', subject: text, message: `the machine's ${name} ${JSON.stringify(v)} is not URL-safe` });
    values[name] = v;
  }
  return text.replace(/\$\{([^}]*)\}/g, (_m, n: string) => values[n]!);
}

/** Reads a bundle SOURCE: a file (the envelope JSON), an http(s) URL, `oci:DIR:TAG`, or a registry reference. */
export async function readBundleSource(source: string, access: RegistryAccess = {}, log?: Logger): Promise<Uint8Array> {
  const where = bundleLocation(source);
  if (where === 'url') return httpGet(source, { maxBytes: MAX_ENVELOPE_BYTES, deadlineMs: 30_000 });
  if (where === 'file') return readFileLimited(source, MAX_ENVELOPE_BYTES);
  parseReference(source); // OCI_REFERENCE_INVALID names a malformed one
  const opened = await openReference(source, { ...access, ...(log ? { log } : {}) });
  if (opened.reference === undefined) throw new MosError({ code: 'USAGE', subject: source, message: 'names no tag or digest', hint: 'e.g. oci:/media/site:bundle' });
  return fetchBundle(opened.store, opened.reference, source);
}

/** Replays the recorded rotations from the manifest CA: each must verify under the set before it. */
async function recordedChain(root: string, ca: TrustAnchors, state: SiteState | undefined): Promise<TrustChain> {
  const chain: TrustChain = { sets: [{ version: 0, anchors: ca }] };
  for (const r of state?.rotations ?? []) {
    const file = join(sitePaths(root).trust, `${r.version}.json`);
    acceptRotation(chain, parseRotation(await readRecorded(file, r.digest), file), new Date(r.acceptedAt), file);
  }
  return chain;
}

/** A file under `config/site/` that state.json names by digest; CONFIG_CORRUPT when it no longer hashes to it. */
async function readRecorded(file: string, digest: string): Promise<Uint8Array> {
  const bytes = await readFileLimited(file, MAX_ENVELOPE_BYTES);
  if (sha256Hex(bytes) !== digest) throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'does not hash to the digest state.json records' });
  return bytes;
}

/** A rotation envelope and the trust set it carries, parsed (not yet verified). */
interface Rotation {
  readonly bytes: Uint8Array;
  readonly parsed: ParsedEnvelope;
  readonly set: SiteTrustSet;
}

function parseRotation(bytes: Uint8Array, subject: string): Rotation {
  const parsed = parseEnvelope(bytes, subject, SITE_TRUST_PAYLOAD_TYPE);
  return { bytes, parsed, set: parseTrustSet(parsed.payload, subject) };
}

/**
 * Checks one rotation against the chain and appends its set: version must be the next one, and the
 * envelope must carry a signature that verifies under the current set and one that verifies under the
 * new set (TUF's root rotation: the outgoing and the incoming keys both agree).
 */
function acceptRotation(chain: TrustChain, { parsed, set }: Rotation, at: Date, subject: string): void {
  const current = chain.sets[chain.sets.length - 1]!;
  if (set.version !== current.version + 1) {
    throw new MosError({
      code: 'TRUST_BUNDLE_INVALID',
      subject,
      message: `trust set version ${set.version} cannot follow version ${current.version}: rotations go one version at a time`,
      hint: `the bundle must carry every rotation after version ${current.version}, in order`,
    });
  }
  const next = parseCaBundle(set.cas.join('\n'), `${subject}: cas`);
  const byOld = verifyEnvelopeSignatures(parsed, current.anchors, at, subject);
  if (byOld.verified.length === 0) {
    throw new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject,
      message: `trust set version ${set.version} is not signed by a site key of the current set (version ${current.version}): ${byOld.failures.join('; ')}`,
    });
  }
  const byNew = verifyEnvelopeSignatures(parsed, next, at, subject);
  if (byNew.verified.length === 0) {
    throw new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject,
      message: `trust set version ${set.version} is not signed by a site key of its own CAs: ${byNew.failures.join('; ')}`,
    });
  }
  current.overlapUntil = new Date(set.overlapUntil);
  chain.sets.push({ version: set.version, anchors: next });
}

/** The anchors a bundle may chain to at `at`: the newest set, and the one before while its overlap lasts. */
function anchorsAt(chain: TrustChain, at: Date): { version: number; anchors: TrustAnchors }[] {
  const n = chain.sets.length;
  const out = [chain.sets[n - 1]!];
  const prev = chain.sets[n - 2];
  if (prev && prev.overlapUntil && at < prev.overlapUntil) out.push(prev);
  return out;
}

/** Trust sets older than the overlap allows at `at` (the one before the newest, once its window ended, and all older). */
function droppedAt(chain: TrustChain, at: Date): number[] {
  const n = chain.sets.length;
  return chain.sets.slice(0, n - 1).filter((s, i) => i < n - 2 || !s.overlapUntil || at >= s.overlapUntil).map((s) => s.version);
}

/**
 * Verifies a bundle envelope for this machine: the rotations it carries are checked from the chain the
 * machine recorded (from the manifest CA), then the bundle's signature must chain, with mosctl's site
 * EKU, to the newest trust set (or the previous one within its overlap window) at `at`. Reads only.
 */
export async function verifySiteBundleBytes(opts: {
  root: string;
  capath?: string;
  bytes: Uint8Array;
  subject: string;
  at: Date;
  state?: SiteState | undefined;
}): Promise<VerifiedBundle> {
  const ca = await loadAnchors(opts.root, opts.capath);
  const chain = await recordedChain(opts.root, ca, opts.state);
  const parsed = parseEnvelope(opts.bytes, opts.subject, SITE_BUNDLE_PAYLOAD_TYPE);
  // The payload is read before its signature is checked only to find the rotations it carries: those
  // authenticate themselves against the recorded chain, and nothing else of it is used unless it verifies.
  const unverified = parseSiteBundle(parsed.payload, opts.subject);
  const newRotations: VerifiedBundle['newRotations'][number][] = [];
  for (const [i, text] of unverified.trust.entries()) {
    const subject = `${opts.subject}: trust[${i}]`;
    const rotation = parseRotation(new TextEncoder().encode(text), subject);
    if (rotation.set.version <= chain.sets[chain.sets.length - 1]!.version) continue; // already recorded
    acceptRotation(chain, rotation, opts.at, subject);
    newRotations.push({ version: rotation.set.version, bytes: rotation.bytes, digest: sha256Hex(rotation.bytes) });
  }
  const failures: string[] = [];
  for (const set of anchorsAt(chain, opts.at)) {
    const r = verifyEnvelopeSignatures(parsed, set.anchors, opts.at, opts.subject);
    const first = r.verified[0];
    if (first) {
      return { bundle: unverified, digest: sha256Hex(opts.bytes), signer: first.signer, trustVersion: set.version, newRotations, dropped: droppedAt(chain, opts.at) };
    }
    failures.push(...r.failures.map((f) => `trust set ${set.version}: ${f}`));
  }
  throw new MosError({
    code: failures.some((f) => f.includes('expired')) ? 'TRUST_CERT_EXPIRED' : 'TRUST_SIGNATURE_INVALID',
    subject: opts.subject,
    message: `no signature verifies as a site bundle: ${failures.join('; ')}`,
    hint: 'sign it with a site key (mosb project add KEYSET:SITE --site) issued under the machine\'s CA or its current site trust set',
  });
}

/** Options of {@link verifySiteBundle}, {@link applySiteBundle} and {@link injectSiteBundle}. */
export interface SiteBundleOptions {
  readonly root: string;
  readonly capath?: string;
  readonly access?: RegistryAccess;
  readonly log?: Logger;
  readonly now?: Date;
}

/** What `mosctl bundle verify|apply|inject|status` report. */
export interface SiteBundleReport {
  readonly site: string;
  readonly version: number;
  readonly digest: string;
  readonly signer: string;
  readonly trustVersion: number;
  readonly provision: ProvisionSource | null;
  /** The environment settings, as a list: their names are the site's, not mosctl's JSON keys. */
  readonly env: readonly { readonly name: string; readonly value: string }[];
  readonly caCertificates: number;
  readonly registriesConf: boolean;
  readonly auth: boolean;
}

function report(v: VerifiedBundle): SiteBundleReport {
  const b = v.bundle;
  return {
    site: b.site,
    version: b.version,
    digest: v.digest,
    signer: v.signer.subject,
    trustVersion: v.trustVersion,
    provision: b.provision ?? null,
    env: Object.keys(b.env).sort().map((name) => ({ name, value: b.env[name]! })),
    caCertificates: b.caCertificates.length,
    registriesConf: b.registriesConf !== undefined,
    auth: b.auth !== undefined,
  };
}

/** `mosctl bundle verify SOURCE`: checks a bundle against this machine's CA and trust sets; writes nothing. */
export async function verifySiteBundle(opts: SiteBundleOptions & { source: string }): Promise<SiteBundleReport & { newer: boolean | null }> {
  const bytes = await readBundleSource(opts.source, opts.access, opts.log);
  const state = await readSiteState(opts.root);
  const v = await verifySiteBundleBytes({ root: opts.root, ...(opts.capath !== undefined ? { capath: opts.capath } : {}), bytes, subject: opts.source, at: opts.now ?? new Date(), state });
  return { ...report(v), newer: state ? v.bundle.version > state.version : null };
}

/** Refuses a bundle older than the recorded one, or the same version with other content. */
function checkVersion(state: SiteState | undefined, v: VerifiedBundle, subject: string): 'same' | 'newer' {
  if (!state) return 'newer';
  if (v.bundle.version < state.version || (v.bundle.version === state.version && v.digest !== state.digest)) {
    throw new MosError({
      code: 'SITE_BUNDLE_OLDER',
      subject,
      message: v.bundle.version < state.version
        ? `bundle version ${v.bundle.version} is older than version ${state.version} (site ${state.site}) that this machine has`
        : `bundle version ${v.bundle.version} has other content than the version ${state.version} this machine has`,
      hint: 'bundle versions only go up: create it again with a higher --bundle-version',
    });
  }
  return v.digest === state.digest ? 'same' : 'newer';
}

/** Records an accepted bundle under the config lock: rotations and the envelope first, state.json last (the commit point). */
async function record(root: string, v: VerifiedBundle, bytes: Uint8Array, source: string, now: Date, previous: SiteState | undefined): Promise<SiteState> {
  const p = sitePaths(root);
  await refuseOutwardSymlinks(root, [SITE_DIR]);
  await ensureDir(p.bundles, 0o755);
  await ensureDir(p.trust, 0o755);
  for (const r of v.newRotations) await writeFileAtomic(join(p.trust, `${r.version}.json`), r.bytes);
  await writeFileAtomic(join(p.bundles, `${v.digest}.json`), bytes);
  const at = now.toISOString();
  const recordedDrops = new Set((previous?.dropped ?? []).map((d) => d.version));
  const state: SiteState = {
    site: v.bundle.site,
    version: v.bundle.version,
    digest: v.digest,
    acceptedAt: at,
    source,
    rotations: [...(previous?.rotations ?? []), ...v.newRotations.map((r) => ({ version: r.version, digest: r.digest, acceptedAt: at }))],
    dropped: [...(previous?.dropped ?? []), ...v.dropped.filter((d) => !recordedDrops.has(d)).map((version) => ({ version, at }))],
    ignored: previous?.ignored ?? [],
  };
  await writeFileAtomic(p.state, `${JSON.stringify(state, null, 2)}\n`);
  // Older envelopes are no longer referenced; a crash before this leaves them, the next apply removes them.
  for (const f of await readdir(p.bundles)) if (f !== `${v.digest}.json`) await rm(join(p.bundles, f), { force: true });
  return state;
}

/** The recorded bundle, re-verified at the time it was accepted (a site certificate's expiry never stops a boot). */
async function loadRecorded(opts: SiteBundleOptions, state: SiteState): Promise<VerifiedBundle> {
  const file = join(sitePaths(opts.root).bundles, `${state.digest}.json`);
  const bytes = await readRecorded(file, state.digest);
  const v = await verifySiteBundleBytes({ root: opts.root, ...(opts.capath !== undefined ? { capath: opts.capath } : {}), bytes, subject: file, at: new Date(state.acceptedAt), state });
  if (v.bundle.version !== state.version || v.bundle.site !== state.site) throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'is not the bundle state.json records' });
  return v;
}

function envFile(env: Readonly<Record<string, string>>): string {
  // Double quotes with \ " $ ` escaped: what both systemd's EnvironmentFile= and sh's `.` read back as the value.
  return Object.keys(env).sort().map((k) => `${k}="${env[k]!.replace(/[\\"$`]/g, (c) => `\\${c}`)}"\n`).join('');
}

/**
 * Writes the bundle's files into `dest` (README "Site bundles": SITE_FILES), each atomically; a file the
 * bundle no longer carries is removed. Returns the paths written, relative to `dest`.
 */
export async function writeSiteFiles(dest: string, v: VerifiedBundle): Promise<string[]> {
  const b = v.bundle;
  await refuseOutwardSymlinks(dest, [SITE_FILES.anchorsDir, 'etc/mosctl/site', 'etc/containers/registries.conf.d']);
  const f = siteFilesUnder(dest);
  const written: string[] = [];
  const put = async (key: keyof typeof SITE_FILES, data: string | undefined, mode = 0o644): Promise<void> => {
    if (data === undefined) {
      await rm(f[key], { force: true });
      return;
    }
    await ensureDir(join(f[key], '..'), 0o755);
    await writeFileAtomic(f[key], data, { mode });
    written.push(SITE_FILES[key]);
  };
  await ensureDir(f.anchorsDir, 0o755);
  const anchors = b.caCertificates.map((pem, i) => ({ name: `${b.site}-${i + 1}.crt`, pem: pem.endsWith('\n') ? pem : `${pem}\n` }));
  for (const old of await readdir(f.anchorsDir)) if (!anchors.some((a) => a.name === old)) await rm(join(f.anchorsDir, old), { force: true });
  for (const a of anchors) {
    await writeFileAtomic(join(f.anchorsDir, a.name), a.pem);
    written.push(`${SITE_FILES.anchorsDir}/${a.name}`);
  }
  await put('caBundle', anchors.length ? anchors.map((a) => a.pem).join('') : undefined);
  await put('env', envFile(b.env));
  await put('registriesConf', b.registriesConf);
  await put('auth', b.auth ? `${JSON.stringify(b.auth, null, 2)}\n` : undefined, 0o600);
  await put('record', `${JSON.stringify({ site: b.site, version: b.version, digest: v.digest, signer: v.signer.subject, trustVersion: v.trustVersion }, null, 2)}\n`);
  return written;
}

/**
 * `mosctl bundle apply SOURCE`: the operator's path on a commissioned machine. Verifies at now, refuses
 * an older version, records it in `config/site/` and writes its files into `dest` (default the root).
 */
export async function applySiteBundle(opts: SiteBundleOptions & { source: string; dest?: string; dryRun?: boolean }): Promise<SiteBundleReport & { changed: boolean; written: string[]; dryRun: boolean }> {
  const bytes = await readBundleSource(opts.source, opts.access, opts.log);
  const now = opts.now ?? new Date();
  const capath = opts.capath ?? systemPaths(opts.root).manifestCa;
  if (opts.dest !== undefined) await refuseOutwardSymlinks(opts.dest, []);
  // Verified before the lock is taken, so a refused bundle leaves not even config/manifest.lock behind;
  // checked again under the lock against the state another writer may have changed meanwhile.
  const check = async () => {
    const state = await readSiteState(opts.root);
    const v = await verifySiteBundleBytes({ root: opts.root, capath, bytes, subject: opts.source, at: now, state });
    return { state, v, change: checkVersion(state, v, opts.source) };
  };
  await check();
  await using _lock = opts.dryRun ? undefined : await lockConfig(opts.root);
  const { state, v, change } = await check();
  if (opts.dryRun) return { ...report(v), changed: change === 'newer', written: [], dryRun: true };
  if (change === 'newer') await record(opts.root, v, bytes, opts.source, now, state);
  const written = await writeSiteFiles(opts.dest ?? opts.root, v);
  return { ...report(v), changed: change === 'newer', written, dryRun: false };
}

/** What the boot-time `mosctl bundle inject` did. */
export interface InjectResult {
  /** The bundle in force, or null when the machine has none and no candidate verified. */
  readonly bundle: SiteBundleReport | null;
  /** A candidate was accepted now (the machine was uncommissioned). */
  readonly accepted: boolean;
  readonly provision: ProvisionSource | null;
  /** True when `config/manifest.git` exists: an OS is installed. */
  readonly installed: boolean;
  readonly written: string[];
  /** Candidates not used, and why. */
  readonly ignored: { source: string; reason: string }[];
}

/**
 * The initrd's step (README "Commissioning"): a machine that recorded a bundle uses that one (re-verified
 * as of when it was accepted) and ignores and logs every candidate; an uncommissioned machine accepts the
 * first candidate that verifies now and records it. With `dest`, the bundle's files are written there.
 */
export async function injectSiteBundle(opts: SiteBundleOptions & { candidates: readonly string[]; dest?: string; networkWaitMs?: number; sysfs?: string }): Promise<InjectResult> {
  const now = opts.now ?? new Date();
  if (opts.dest !== undefined) await refuseOutwardSymlinks(opts.dest, []); // a missing or unusable --dest fails before anything is recorded
  const installed = await exists(systemPaths(opts.root).repoDir);
  let state = await readSiteState(opts.root);
  // Nothing recorded and nothing offered: no lock, nothing written (an uncommissioned machine waiting).
  await using _lock = state || opts.candidates.length ? await lockConfig(opts.root, { wait: true, timeoutMs: 30_000 }) : undefined;
  state = await readSiteState(opts.root);
  const ignored: { source: string; reason: string }[] = [];
  let current: VerifiedBundle | undefined;
  let accepted = false;
  if (state) {
    current = await loadRecorded(opts, state);
    for (const c of opts.candidates) {
      let reason = `machine already commissioned with site ${state.site} version ${state.version}; inputs are accepted only while uncommissioned (use mosctl bundle apply)`;
      try {
        // A URL is not even fetched: nothing from the network is taken once commissioned.
        const bytes = bundleLocation(c) === 'url' ? undefined : await readBundleSource(c, opts.access, opts.log);
        if (bytes && sha256Hex(bytes) === state.digest) continue; // the same bundle still on the medium: nothing to say
      } catch (e) {
        reason = `${reason}; and it cannot be read: ${e instanceof Error ? e.message : String(e)}`;
      }
      ignored.push({ source: c, reason });
    }
  } else {
    for (const c of opts.candidates) {
      try {
        const bytes = bundleLocation(c) === 'url' ? await fetchWithBackoff(c, opts) : await readBundleSource(c, opts.access, opts.log);
        const v = await verifySiteBundleBytes({ root: opts.root, ...(opts.capath !== undefined ? { capath: opts.capath } : {}), bytes, subject: c, at: now, state });
        state = await record(opts.root, v, bytes, c, now, undefined);
        current = v;
        accepted = true;
        break;
      } catch (e) {
        if (!(e instanceof MosError)) throw e;
        ignored.push({ source: c, reason: e.message });
      }
    }
  }
  // The same input met again (every boot, while it stays on the ESP) is logged once.
  const fresh = state ? ignored.filter((i) => !state!.ignored.some((o) => o.source === i.source && o.reason === i.reason)) : [];
  if (state && fresh.length) {
    const at = now.toISOString();
    const next: SiteState = { ...state, ignored: [...state.ignored, ...fresh.map((i) => ({ at, ...i }))].slice(-MAX_IGNORED) };
    await writeFileAtomic(sitePaths(opts.root).state, `${JSON.stringify(next, null, 2)}\n`);
  }
  for (const i of ignored) opts.log?.warn(`site bundle ${i.source} ignored: ${i.reason}`);
  const written = current && opts.dest !== undefined ? await writeSiteFiles(opts.dest, current) : [];
  return {
    bundle: current ? report(current) : null,
    accepted,
    provision: current?.bundle.provision ?? null,
    installed,
    written,
    ignored,
  };
}

/**
 * A command-line URL, its `${uuid}`-style variables expanded, fetched with jittered exponential backoff
 * (1 s doubling to 30 s) until `networkWaitMs`: each wait is logged as what it waits for, since at boot
 * the network may come up late. The last failure is thrown.
 */
async function fetchWithBackoff(template: string, opts: SiteBundleOptions & { networkWaitMs?: number; sysfs?: string }): Promise<Uint8Array> {
  const url = await expandMachineVars(template, opts.sysfs);
  const until = Date.now() + (opts.networkWaitMs ?? 60_000);
  for (let attempt = 1, delay = 1000; ; attempt++, delay = Math.min(delay * 2, 30_000)) {
    try {
      return await readBundleSource(url, opts.access, opts.log);
    } catch (e) {
      const retryable = e instanceof MosError && ['REGISTRY_UNREACHABLE', 'REGISTRY_TIMEOUT', 'REGISTRY_ERROR', 'NOT_FOUND'].includes(e.code);
      const wait = Math.round(delay * (0.5 + Math.random() / 2));
      if (!retryable || Date.now() + wait > until) throw e;
      opts.log?.warn(`waiting for the site bundle at ${url}: ${e.message}; attempt ${attempt + 1} in ${(wait / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** `mosctl bundle status`: the recorded bundle (re-verified) and the trust chain, or null when uncommissioned. */
export async function siteBundleStatus(opts: SiteBundleOptions): Promise<{ commissioned: boolean; bundle: SiteBundleReport | null; state: SiteState | null }> {
  const state = await readSiteState(opts.root);
  if (!state) return { commissioned: false, bundle: null, state: null };
  return { commissioned: true, bundle: report(await loadRecorded(opts, state)), state };
}
