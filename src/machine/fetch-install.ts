import { MosError, isMosError, type Logger, type OnProgress } from '../base/index.js';
import {
  firstThatWorks, openEndpoints, openMirrored, openReference, registriesConfOf,
  type ContentStore, type Descriptor, type RegistryAccess,
} from '../oci/index.js';
import type { TrustAnchors, SignerInfo } from '../trust/index.js';
import { TARGET_REPOSITORY, readInstallArtifact, targetTag } from '../protocol/index.js';
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
  const { artifact, raw, certs, signatures } = await readInstallArtifact(store, reference, opts.source, t);
  const now = opts.now ?? new Date();
  let firstError: unknown;
  for (const { payload: cert } of certs) {
    for (const { payload: signature } of signatures) {
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
