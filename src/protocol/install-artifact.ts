import { MosError, isMosError } from '../base/index.js';
import { MAX_MANIFEST_BYTES, OCI_MANIFEST, isManifestType, parseImageManifest, type ContentStore, type Descriptor, type ImageManifest, type TransferOptions } from '../oci/index.js';
import { CERT_ARTIFACT_TYPE, INSTALL_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, listReferrers } from './artifacts.js';

/** A referrer of an install artifact (certificate or signature): its manifest and its one payload. */
export interface ReferrerPayload {
  readonly descriptor: Descriptor;
  readonly payload: Uint8Array;
}

/** An install artifact read from a store, not yet verified: install.json exactly as published and its referrers. */
export interface InstallArtifact {
  /** The artifact's manifest (the `subject` of its certificate and signature). */
  readonly artifact: Descriptor;
  readonly raw: Uint8Array;
  readonly certs: readonly ReferrerPayload[];
  readonly signatures: readonly ReferrerPayload[];
}

/** Bound on referrer candidates read (a registry could list thousands). */
const MAX_CANDIDATES = 8;

/**
 * Reads the install artifact `reference` names in `store` with its certificate and signature referrers
 * (referrers API or fallback tag), bounded in size and number. Nothing is verified here; a store without
 * a certificate or signature is TRUST_SIGNATURE_INVALID. `source` names the artifact in messages.
 */
export async function readInstallArtifact(store: ContentStore, reference: string, source: string, t: TransferOptions = {}): Promise<InstallArtifact> {
  const artifact = await store.resolve(reference, t);
  const manifest = parseInstallArtifact(await store.fetchBytes(artifact, t), source);
  const layer = manifest.layers[0]!;
  if (layer.size > MAX_MANIFEST_BYTES) {
    throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject: `${source}: install.json`, message: `is ${layer.size} bytes, more than ${MAX_MANIFEST_BYTES}` });
  }
  // Three independent chains of round trips (install.json; each referrer type's list, manifest and
  // payload) run at once; a failure is reported in this order, as if they had run one after another.
  const [raw, certs, signatures] = await inOrder([
    store.fetchBytes(layer, t),
    referrerPayloads(store, artifact, CERT_ARTIFACT_TYPE, source, t),
    referrerPayloads(store, artifact, SIGNATURE_ARTIFACT_TYPE, source, t),
  ] as const);
  if (certs.length === 0 || signatures.length === 0) {
    throw new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject: source,
      message: `has no ${certs.length === 0 ? 'signer certificate' : 'signature'} (${certs.length === 0 ? CERT_ARTIFACT_TYPE : SIGNATURE_ARTIFACT_TYPE} referrer)`,
      hint: 'publish it with mosb manifest publish, which pushes the certificate and signature',
    });
  }
  return { artifact, raw, certs, signatures };
}

/** Awaits every promise; rejects with the first failure in list order (not in time order). */
async function inOrder<T extends readonly unknown[]>(ps: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(ps);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

function parseInstallArtifact(bytes: Uint8Array, subject: string): ImageManifest {
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

async function referrerPayloads(store: ContentStore, subject: Descriptor, type: string, source: string, t: TransferOptions): Promise<ReferrerPayload[]> {
  const found = (await listReferrers(store, subject, type)).filter((d) => isManifestType(d.mediaType)).slice(0, MAX_CANDIDATES);
  const out: ReferrerPayload[] = [];
  for (const d of found) {
    const m = parseImageManifest(await store.fetchBytes(d, t), `${source}: ${type} referrer ${d.digest}`);
    const layer = m.layers[0];
    if (!layer || layer.size > MAX_MANIFEST_BYTES) continue;
    out.push({ descriptor: d, payload: await store.fetchBytes(layer, t) });
  }
  return out;
}
