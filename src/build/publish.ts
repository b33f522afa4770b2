import { resolve as resolvePath } from 'node:path';
import { MosError, isMosError, isRepositoryName, parseReference, silentLogger, type Digest, type Logger, type OnProgress } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import {
  MAX_MANIFEST_BYTES, installFileFromImport, parseImportFile, parseSource, serializeInstallFile,
  type ImportFile, type Pin, type Source, type UserTarget,
} from '../manifest/index.js';
import {
  EMPTY_JSON_BYTES, copy, isIndexType, openLayout, parseImageManifest, openRepository, repositoryOptions,
  type ContentStore, type Descriptor, type TransferOptions,
} from '../oci/index.js';
import { MAX_SIGNATURE_BYTES } from '../trust/index.js';
import {
  BOOTKIT_TARGET, BOOTKIT_VERSION, CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, TARGET_REPOSITORY, addReferrer, listReferrers, targetTag,
} from '../protocol/index.js';
import type { RegistryAccess } from '../oci/index.js';
import {
  CERT_LAYER_TITLE, EMPTY_CONFIG, SIGNATURE_LAYER_TITLE, installArtifact, referrerArtifact, type BuiltManifest,
} from './publish-manifests.js';
import { loadSigner, signAndCheck, signatureMatches, type SignerSource } from './publish-signer.js';
import { keysetBootkit } from './bootkit.js';
import { parseProjectSpec } from './keyset.js';

/** Options of `publish` (`mosb manifest publish`). */
export interface PublishOptions extends RegistryAccess {
  /** manifest.yaml path (also the name used in messages). */
  readonly manifestFile: string;
  /** The YAML text, when already in hand; default: read `manifestFile`. */
  readonly yaml?: string | Uint8Array;
  /** `HOST[:PORT]` of the registry (images go to `<repo>/mos:<hex>`), or `oci:DIR` (one layout holds everything). */
  readonly repo: string;
  /** `NAME:TAG` of the install artifact, e.g. `machine/install:1.0.0`. */
  readonly name: string;
  /** `KEYSET:PROJECT` whose signing key and certificate are used (mos's `--project`). */
  readonly project?: string;
  /** Signer certificate and key files, instead of `project`. */
  readonly cert?: string;
  readonly key?: string;
  /** Base of the keyset tree (`$XDG_DATA_HOME`); default the environment's. */
  readonly dataHome?: string;
  /**
   * Do not add the keyset's `bootkit` target. Without it, a complete manifest signed with `project`
   * whose keyset has a bootkit (`mosb keyset bootkit`) and that lists no `bootkit` target gets one
   * (mos's default; mos's demo `hostfs` default is never added). Partial manifests and `cert`/`key`
   * signers get none.
   */
  readonly skipBootkit?: boolean;
  /** Refuse (NOT_FOUND) when the bootkit would be added but the keyset has none, as mos does. */
  readonly requireBootkit?: boolean;
  /** Directory relative `oci:DIR:TAG` sources are resolved against; default the current directory (as mos). */
  readonly baseDir?: string;
  /**
   * The `org.opencontainers.image.created` annotation of the three artifacts; default
   * 1970-01-01T00:00:00Z, so publishing the same YAML again gives the same install artifact and no
   * duplicate referrers.
   */
  readonly created?: Date;
  /** Clock for the signer certificate's validity check; default now. */
  readonly now?: Date;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

/** What `publish` pushed, as `--json` prints it. */
export interface PublishResult {
  /** Where the install artifact is: `host:port/name:tag` or `oci:DIR:TAG`. */
  readonly reference: string;
  /** Digest of the install artifact manifest (the `subject` of the certificate and signature). */
  readonly digest: Digest;
  /** sha256 hex of the exact install.json bytes. */
  readonly manifest: string;
  readonly targets: readonly { readonly name: string; readonly digest: Digest; readonly size: number }[];
  /** Digests of the certificate and signature referrer manifests. */
  readonly cert: Digest;
  readonly signature: Digest;
  /** Targets publish added to the YAML's (the keyset's `bootkit`), in install.json order. */
  readonly added: readonly string[];
}

/** Where the artifacts go, parsed (nothing opened or created yet). */
type Destination =
  | { readonly kind: 'registry'; readonly host: string; readonly name: string; readonly tag: string }
  | { readonly kind: 'layout'; readonly dir: string; readonly tag: string };

const EPOCH = new Date(0);
/** Bound on existing signature referrers examined for reuse. */
const MAX_REUSE_CANDIDATES = 8;

/**
 * Compiles, signs and publishes manifest.yaml (reference/mos.md §1.2, §4.2): validates it, resolves
 * every source to its manifest digest and size (refusing a contradiction with a pinned digest/size),
 * signs the compact install.json and checks the signature, then copies the images, pushes the install
 * artifact by digest, its certificate and signature referrers, and only then the tag. Every check runs
 * before the first push, and a failure mid-way leaves no tag naming an unsigned artifact. Idempotent.
 */
export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const log = opts.log ?? silentLogger;
  const step = (s: string, detail?: string) => opts.onProgress?.({ kind: 'step', step: s, ...(detail !== undefined ? { detail } : {}) });
  const t: TransferOptions = { ...(opts.signal ? { signal: opts.signal } : {}), log };
  const file = opts.manifestFile;
  const parsed = parseImportFile(opts.yaml ?? (await readFileLimited(file, MAX_MANIFEST_BYTES)), file);
  const dest = parseDestination(opts.repo, opts.name);
  const signer = await loadSigner(signerSource(opts));
  const { imp, added } = await withBootkit(parsed, opts, log);

  const sources = await resolveSources(imp, opts, t, step);
  const pins = new Map<string, Pin>(imp.targets.map((tg, i) => [tg.service_name, sources[i]!.pin]));
  const raw = serializeInstallFile(rethrowAs(() => installFileFromImport(imp, pins), (e) => `${file}: ${e.subject ?? ''}`));
  const signature = signAndCheck(signer, raw, opts.now ?? new Date());

  const stores = await openDestination(dest, opts, log);
  const copied = new Set<string>();
  for (const s of sources) {
    if (copied.has(s.descriptor.digest)) continue;
    copied.add(s.descriptor.digest);
    step('copy', `${s.source} -> ${describeDestination(dest, TARGET_REPOSITORY, targetTag(s.descriptor.digest))}`);
    await copy({
      src: s.store, dst: stores.images, reference: s.descriptor, tag: targetTag(s.descriptor.digest),
      ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), log,
    });
  }

  step('push', describeDestination(dest));
  const created = opts.created ?? EPOCH;
  const install = installArtifact(raw, created);
  const store = stores.install;
  await pushBlob(store, EMPTY_CONFIG, EMPTY_JSON_BYTES, t);
  await pushBlob(store, layerOf(install), raw, t);
  // By digest first: the tag appears last, once the certificate and signature can be found.
  await store.pushManifest(install.descriptor, install.bytes, t);
  const subject = install.descriptor;
  const cert = referrerArtifact({ artifactType: CERT_ARTIFACT_TYPE, payload: signer.certPem, title: CERT_LAYER_TITLE, subject, created });
  await pushReferrer(store, subject, cert, signer.certPem, CERT_ARTIFACT_TYPE, t);
  const sigDigest = (await reusableSignature(store, subject, signer.certPem, raw, t)) ?? (await pushSignature(store, subject, signature, created, t));
  await store.pushManifest(install.descriptor, install.bytes, { ...t, tag: dest.tag });
  const reference = describeDestination(dest);
  log.debug('published', { reference, digest: subject.digest });
  return {
    reference,
    digest: subject.digest,
    manifest: layerOf(install).digest.slice('sha256:'.length),
    targets: imp.targets.map((tg, i) => ({ name: tg.service_name, digest: sources[i]!.descriptor.digest, size: sources[i]!.pin.size })),
    cert: cert.descriptor.digest,
    signature: sigDigest,
    added,
  };
}

/**
 * mos's default target, the keyset's bootkit (reference/mos.md §1.2 step 2), appended when the manifest
 * is complete, lists no `bootkit`, is signed with a keyset project and `skipBootkit` is not set. A keyset
 * without a bootkit adds nothing (said in the log), or is refused with `requireBootkit`. mos also adds
 * its demo `hostfs` from zothub.io; mosctl never does (a release names its own root filesystem).
 */
async function withBootkit(imp: ImportFile, opts: PublishOptions, log: Logger): Promise<{ imp: ImportFile; added: string[] }> {
  const none = { imp, added: [] };
  if (opts.skipBootkit) {
    if (opts.requireBootkit) throw new MosError({ code: 'USAGE', subject: '--require-bootkit', message: 'does not go with --skip-bootkit' });
    return none;
  }
  if (opts.project === undefined) {
    if (opts.requireBootkit) throw new MosError({ code: 'USAGE', subject: '--require-bootkit', message: 'needs --project KEYSET:PROJECT (the bootkit is the keyset\'s)' });
    return none;
  }
  if (imp.targets.some((t) => t.service_name === BOOTKIT_TARGET)) return none;
  if (imp.update_type !== 'complete') {
    log.debug('a partial manifest gets no bootkit target: it names only what it changes');
    return none;
  }
  const { keyset } = parseProjectSpec(opts.project);
  const source = await keysetBootkit({ keyset, ...(opts.dataHome !== undefined ? { dataHome: opts.dataHome } : {}) });
  if (source === undefined) {
    if (opts.requireBootkit) {
      throw new MosError({ code: 'NOT_FOUND', subject: `keyset ${keyset}`, message: 'has no bootkit', hint: `create it with: mosb keyset bootkit ${keyset} BOOTX64.EFI (a UKI from mosb uki build), or pass --skip-bootkit` });
    }
    log.info(`keyset ${keyset} has no bootkit: publishing without a bootkit target (mosb keyset bootkit ${keyset} UKI creates one)`);
    return none;
  }
  log.info(`adding target ${BOOTKIT_TARGET} from keyset ${keyset} (${source})`);
  const bootkit: UserTarget = {
    service_name: BOOTKIT_TARGET, source, version: BOOTKIT_VERSION, service_type: 'fs-only',
    network: { type: 'host', ipv4: '', ipv6: '', ports: null }, nsgroup: '', storage: null,
  };
  return { imp: { ...imp, targets: [...imp.targets, bootkit] }, added: [BOOTKIT_TARGET] };
}

function signerSource(opts: PublishOptions): SignerSource {
  const files = opts.cert !== undefined || opts.key !== undefined;
  if (opts.project !== undefined && files) {
    throw new MosError({ code: 'USAGE', subject: '--project', message: 'give either --project or --cert and --key, not both' });
  }
  if (opts.project !== undefined) return { kind: 'project', spec: opts.project, ...(opts.dataHome !== undefined ? { dataHome: opts.dataHome } : {}) };
  if (opts.cert === undefined || opts.key === undefined) {
    throw new MosError({
      code: 'USAGE',
      subject: opts.cert === undefined && opts.key === undefined ? '--project' : opts.cert === undefined ? '--cert' : '--key',
      message: files ? 'the signer needs both --cert and --key' : 'no signing key given',
      hint: 'pass --project KEYSET:PROJECT (see mosb project add), or --cert FILE --key FILE',
    });
  }
  return { kind: 'files', cert: opts.cert, key: opts.key };
}

/** Parses `--repo` and `--name` into a destination; OCI_REFERENCE_INVALID naming the flag. Pure. */
export function parseDestination(repo: string, name: string): Destination {
  const colon = name.lastIndexOf(':');
  if (colon <= 0 || name.includes('@')) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `--name ${name}`, message: 'want NAME:TAG', hint: 'e.g. --name machine/install:1.0.0' });
  }
  if (repo.startsWith('oci:')) {
    // A layout holds one install artifact per tag, so only the tag is used; the name must still be a
    // repository name, so that the same flags mean the same thing for a registry (and `../x` is refused).
    if (!isRepositoryName(name.slice(0, colon))) {
      throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `--name ${name}`, message: `"${name.slice(0, colon)}" is not a repository name (lowercase a-z0-9, separators . _ __ - /)`, hint: 'e.g. --name machine/install:1.0.0' });
    }
    const dir = repo.slice('oci:'.length);
    if (dir === '') throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `--repo ${repo}`, message: 'names no layout directory', hint: 'write --repo oci:DIR' });
    const ref = rethrowAs(() => parseReference(`oci:${dir}:${name.slice(colon + 1)}`), `--name ${name}`);
    return { kind: 'layout', dir: ref.kind === 'layout' ? ref.dir : dir, tag: ref.tag! };
  }
  const host = repo.replace(/^docker:\/\//, '').replace(/\/+$/, '');
  if (host === '' || host.includes('/')) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `--repo ${repo}`, message: 'want HOST[:PORT] or oci:DIR', hint: 'e.g. --repo 127.0.0.1:5000; the repository path goes in --name' });
  }
  const ref = rethrowAs(() => parseReference(`${host}/${name}`), `--repo ${repo} --name ${name}`);
  if (ref.kind !== 'registry' || ref.tag === undefined || ref.host !== host) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: `--repo ${repo}`, message: `"${host}" is not a registry HOST[:PORT]` });
  }
  return { kind: 'registry', host, name: ref.name, tag: ref.tag };
}

// Re-subjects a MosError thrown by `fn` (keeping code, message, hint and the cause).
function rethrowAs<T>(fn: () => T, subject: string | ((e: MosError) => string)): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof MosError)) throw e;
    const s = typeof subject === 'string' ? subject : subject(e);
    throw new MosError({ code: e.code, subject: s, message: e.message, ...(e.hint ? { hint: e.hint } : {}), cause: e });
  }
}

function describeDestination(d: Destination, name?: string, tag?: string): string {
  return d.kind === 'registry' ? `${d.host}/${name ?? d.name}:${tag ?? d.tag}` : `oci:${d.dir}:${tag ?? d.tag}`;
}

interface ResolvedSource {
  readonly source: string;
  readonly store: ContentStore;
  readonly descriptor: Descriptor;
  readonly pin: Pin;
}

// Every source resolved (nothing written): an error names the target's source field.
async function resolveSources(imp: ImportFile, opts: PublishOptions, t: TransferOptions, step: (s: string, d?: string) => void): Promise<ResolvedSource[]> {
  const out: ResolvedSource[] = [];
  for (const [i, target] of imp.targets.entries()) {
    const field = `${opts.manifestFile}: targets[${i}].source`;
    step('resolve', target.source);
    const src = parseSource(target.source, field);
    let store: ContentStore;
    let descriptor: Descriptor;
    try {
      store = await openSource(src, opts);
      descriptor = await store.resolve(src.digest ?? src.tag!, t);
    } catch (e) {
      if (!isMosError(e)) throw e;
      throw new MosError({ code: e.code, subject: field, message: `${target.source}: ${e.subject ? `${e.subject}: ` : ''}${e.message}`, hint: e.hint ?? 'check that the image exists', cause: e });
    }
    if (isIndexType(descriptor.mediaType)) {
      throw new MosError({ code: 'OCI_MEDIA_TYPE_UNSUPPORTED', subject: field, message: `${target.source} is an image index; a target must be one image manifest`, hint: 'name the platform image by its digest (NAME@sha256:...)' });
    }
    out.push({ source: target.source, store, descriptor, pin: { digest: descriptor.digest, size: descriptor.size } });
  }
  return out;
}

async function openSource(src: Source, opts: PublishOptions): Promise<ContentStore> {
  switch (src.kind) {
    case 'layout':
      return openLayout(resolvePath(opts.baseDir ?? process.cwd(), src.dir), opts.log ? { log: opts.log } : {});
    case 'registry':
      return openRepository(repositoryOptions(src.host, src.name, opts));
  }
}


// A registry: the install repository and `mos`; a layout: the same store for both (created here, late).
async function openDestination(d: Destination, opts: PublishOptions, log: Logger): Promise<{ install: ContentStore; images: ContentStore }> {
  if (d.kind === 'layout') {
    const store = await openLayout(d.dir, { create: true, log });
    return { install: store, images: store };
  }
  return { install: openRepository(repositoryOptions(d.host, d.name, opts)), images: openRepository(repositoryOptions(d.host, TARGET_REPOSITORY, opts)) };
}

function layerOf(m: BuiltManifest): Descriptor {
  return parseImageManifest(m.bytes, m.descriptor.digest).layers[0]!;
}

async function pushBlob(store: ContentStore, desc: Descriptor, bytes: Uint8Array, t: TransferOptions): Promise<void> {
  await store.pushBlob({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, single(bytes), t);
}

async function* single(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

// Payload, config and manifest by digest; registries index the subject themselves, a layout via addReferrer.
async function pushReferrer(store: ContentStore, subject: Descriptor, m: BuiltManifest, payload: Uint8Array, artifactType: string, t: TransferOptions): Promise<void> {
  await pushBlob(store, layerOf(m), payload, t);
  await store.pushManifest(m.descriptor, m.bytes, t);
  await addReferrer(store, subject, { ...m.descriptor, artifactType });
}

async function pushSignature(store: ContentStore, subject: Descriptor, signature: Uint8Array, created: Date, t: TransferOptions): Promise<Digest> {
  const m = referrerArtifact({ artifactType: SIGNATURE_ARTIFACT_TYPE, payload: signature, title: SIGNATURE_LAYER_TITLE, subject, created });
  await pushReferrer(store, subject, m, signature, SIGNATURE_ARTIFACT_TYPE, t);
  return m.descriptor.digest;
}

/**
 * An existing signature referrer of `subject` that verifies with this certificate: re-publishing with
 * a randomized scheme (ECDSA) then adds no second signature. RSA and Ed25519 signatures are
 * deterministic, so their artifact is byte-identical anyway.
 */
async function reusableSignature(store: ContentStore, subject: Descriptor, certPem: Uint8Array, raw: Uint8Array, t: TransferOptions): Promise<Digest | undefined> {
  const found = (await listReferrers(store, subject, SIGNATURE_ARTIFACT_TYPE)).slice(0, MAX_REUSE_CANDIDATES);
  for (const d of found) {
    try {
      const layer = parseImageManifest(await store.fetchBytes(d, t), d.digest).layers[0];
      if (!layer || layer.size > MAX_SIGNATURE_BYTES) continue;
      if (signatureMatches(certPem, raw, await store.fetchBytes(layer, t))) return d.digest;
    } catch (e) {
      if (!isMosError(e)) throw e; // an unreadable old referrer is just not reused
    }
  }
  return undefined;
}
