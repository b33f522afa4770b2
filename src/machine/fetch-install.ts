import { MosError, isMosError, type Logger, type OnProgress } from '../base/index.js';
import {
  MAX_MANIFEST_BYTES, OCI_MANIFEST, firstThatWorks, isManifestType, openEndpoints, openMirrored, openReference, parseImageManifest, registriesConfOf,
  type ContentStore, type Descriptor, type ImageManifest, type RegistryAccess,
} from '../oci/index.js';
import type { TrustAnchors, SignerInfo } from '../trust/index.js';
import { CERT_ARTIFACT_TYPE, INSTALL_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, TARGET_REPOSITORY, listReferrers, targetTag } from '../protocol/index.js';
import { verifyTriple } from './trust-policy.js';

/** An install manifest fetched from a SOURCE and verified against the manifest CA. */
export interface FetchedInstall {
  readonly source: string;
  /** The install artifact's manifest (the `subject` of its cert and signature). */
  readonly artifact: Descriptor;
  /** install.json exactly as published. */
  readonly raw: Uint8Array;
  readonly signature: Uint8Array;
  readonly cert: Uint8Array;
  readonly signer: SignerInfo;
  /** Where the target image with `digest` is, and the reference naming it there. */
  imageSource(digest: string): { readonly store: ContentStore; readonly reference: string };
}

export interface FetchInstallOptions extends RegistryAccess {
  readonly source: string;
  readonly anchors: TrustAnchors;
  readonly now?: Date;
  readonly signal?: AbortSignal;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
}

/** Bound on referrer candidates tried (a registry could list thousands). */
const MAX_CANDIDATES = 8;

/**
 * Fetches the install artifact named by SOURCE (registry `host/name:tag`, `host/name@sha256:…`, or a
 * live-CD layout `oci:DIR:TAG`), its signer certificate and its signature (referrers API or fallback
 * tag), and verifies them against `anchors` before returning: nothing is written anywhere. When several
 * certificate/signature referrers exist (re-publishes), the first pair that verifies wins.
 */
export async function fetchInstall(opts: FetchInstallOptions): Promise<FetchedInstall> {
  const opened = await openReference(opts.source, { ...opts, create: false });
  if (opened.reference === undefined) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: opts.source, message: 'names no tag or digest', hint: 'add :TAG (e.g. host:5000/machine/install:1.0.0)' });
  }
  const reference = opened.reference;
  // A layout (live CD): the images are in the same store, tagged by their digests.
  if (opened.ref.kind !== 'registry') return fetchFrom(opened.store, reference, (digest) => ({ store: opened.store, reference: targetTag(digest) }), opts);
  // A registry: its mirrors in order (registries.conf; a tag only where the entry allows it), then itself.
  const ref = opened.ref;
  const conf = await registriesConfOf(opts);
  const images = openMirrored(conf, ref.host, TARGET_REPOSITORY, true, opts); // by digest: digest-only mirrors serve them too
  const imageSource = (digest: string) => ({ store: images, reference: digest });
  return firstThatWorks(openEndpoints(conf, ref.host, ref.name, ref.digest !== undefined, opts), (c) => fetchFrom(c.store, reference, imageSource, opts), opts.source);
}

async function fetchFrom(store: ContentStore, reference: string, imageSource: FetchedInstall['imageSource'], opts: FetchInstallOptions): Promise<FetchedInstall> {
  const t = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
  const artifact = await store.resolve(reference, t);
  const manifest = parseArtifact(await store.fetchBytes(artifact, t), opts.source);
  const layer = manifest.layers[0]!;
  if (layer.size > MAX_MANIFEST_BYTES) {
    throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject: `${opts.source}: install.json`, message: `is ${layer.size} bytes, more than ${MAX_MANIFEST_BYTES}` });
  }
  const raw = await store.fetchBytes(layer, t);
  const certs = await referrerPayloads(store, artifact, CERT_ARTIFACT_TYPE, opts.source, t);
  const sigs = await referrerPayloads(store, artifact, SIGNATURE_ARTIFACT_TYPE, opts.source, t);
  if (certs.length === 0 || sigs.length === 0) {
    throw new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject: opts.source,
      message: `has no ${certs.length === 0 ? 'signer certificate' : 'signature'} (${certs.length === 0 ? CERT_ARTIFACT_TYPE : SIGNATURE_ARTIFACT_TYPE} referrer)`,
      hint: 'publish it with mosb manifest publish, which pushes the certificate and signature',
    });
  }
  const now = opts.now ?? new Date();
  let firstError: unknown;
  for (const cert of certs) {
    for (const signature of sigs) {
      try {
        const signer = verifyTriple({ sha: '', raw, signature, cert }, opts.anchors, now, 'install.json');
        return { source: opts.source, artifact, raw, signature, cert, signer, imageSource };
      } catch (e) {
        if (!isMosError(e)) throw e;
        firstError ??= e;
      }
    }
  }
  throw firstError;
}

function parseArtifact(bytes: Uint8Array, subject: string): ImageManifest {
  const bad = (message: string, cause?: unknown) => new MosError({ code: 'OCI_MANIFEST_INVALID', subject, message, hint: 'is this an install manifest published by mosb?', cause });
  let doc: ImageManifest;
  try {
    doc = parseImageManifest(bytes, subject);
  } catch (e) {
    if (isMosError(e, 'OCI_MANIFEST_INVALID')) throw bad(`is not an OCI image manifest: ${e.message}`, e);
    throw e;
  }
  if ((doc.mediaType ?? OCI_MANIFEST) !== OCI_MANIFEST) throw bad(`has media type ${String(doc.mediaType)}, not ${OCI_MANIFEST}`);
  const type = doc.artifactType ?? doc.config?.mediaType;
  // regctl-made artifacts put the type on the config; mos's publish sets artifactType.
  if (type !== INSTALL_ARTIFACT_TYPE && doc.layers[0]?.mediaType !== INSTALL_ARTIFACT_TYPE) throw bad(`is not an install manifest (artifactType ${JSON.stringify(type)})`);
  if (doc.layers.length < 1) throw bad('has no layers');
  return doc;
}

async function referrerPayloads(store: ContentStore, subject: Descriptor, type: string, source: string, t: object): Promise<Uint8Array[]> {
  const found = (await listReferrers(store, subject, type)).filter((d) => isManifestType(d.mediaType)).slice(0, MAX_CANDIDATES);
  const out: Uint8Array[] = [];
  for (const d of found) {
    const m = parseImageManifest(await store.fetchBytes(d, t), `${source}: ${type} referrer ${d.digest}`);
    const layer = m.layers[0];
    if (!layer || layer.size > MAX_MANIFEST_BYTES) continue;
    out.push(await store.fetchBytes(layer, t));
  }
  return out;
}


