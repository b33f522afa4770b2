import { sha256Digest } from '../base/index.js';
import {
  ANNOTATION_CREATED, ANNOTATION_TITLE, EMPTY_JSON_BYTES, EMPTY_JSON_DIGEST, OCI_EMPTY, OCI_LAYER_TAR, OCI_MANIFEST,
  type Descriptor,
} from '../oci/index.js';
import { INSTALL_ARTIFACT_TYPE } from '../protocol/index.js';

/** Layer titles mos gives the three payloads (reference/mos.md §4.2). */
export const INSTALL_LAYER_TITLE = 'index.json';
export const CERT_LAYER_TITLE = 'cert.pem';
export const SIGNATURE_LAYER_TITLE = 'install.json.signed';

/** A manifest ready to push: its exact bytes and the descriptor naming them. */
export interface BuiltManifest {
  readonly bytes: Uint8Array;
  readonly descriptor: Descriptor;
}

/** The empty JSON config (`{}`) every machine artifact uses. */
export const EMPTY_CONFIG: Descriptor = { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: EMPTY_JSON_BYTES.byteLength };

/** Descriptor of a blob's bytes. */
export function describeBytes(mediaType: string, bytes: Uint8Array): Descriptor {
  return { mediaType, digest: sha256Digest(bytes), size: bytes.byteLength };
}

/** RFC 3339 in seconds, as Go's `time.Format(time.RFC3339)` writes UTC times. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The install artifact manifest exactly in mos's shape: OCI manifest, artifactType
 * `application/vnd.machine.install`, empty config, one layer (the install.json bytes, titled
 * `index.json` as mos titles it), and a `created` annotation. Pure.
 */
export function installArtifact(installJson: Uint8Array, created: Date): BuiltManifest {
  const layer = describeBytes(INSTALL_ARTIFACT_TYPE, installJson);
  return build({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: INSTALL_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: [{ ...layer, annotations: { [ANNOTATION_TITLE]: INSTALL_LAYER_TITLE } }],
    annotations: { [ANNOTATION_CREATED]: rfc3339(created) },
  });
}

/**
 * A referrer artifact (signer certificate or signature) of `subject`: empty config, one tar-typed
 * layer holding `payload` with its file name as title (what mos pushes), `subject` = the install
 * manifest. Pure.
 */
export function referrerArtifact(opts: { artifactType: string; payload: Uint8Array; title: string; subject: Descriptor; created: Date }): BuiltManifest {
  const layer = describeBytes(OCI_LAYER_TAR, opts.payload);
  return build({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: opts.artifactType,
    config: EMPTY_CONFIG,
    layers: [{ ...layer, annotations: { [ANNOTATION_TITLE]: opts.title } }],
    subject: { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size },
    annotations: { [ANNOTATION_CREATED]: rfc3339(opts.created) },
  });
}

function build(doc: object): BuiltManifest {
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  return { bytes, descriptor: describeBytes(OCI_MANIFEST, bytes) };
}
