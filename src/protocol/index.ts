// Public surface of src/protocol: mos's artifact conventions, shared by the machine (mosctl) and the
// builder (mosb): artifact types, target tags and the referrer fallback.
export { INSTALL_ARTIFACT_TYPE, CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, TARGET_REPOSITORY, targetTag, listReferrers, addReferrer } from './artifacts.js';
export { readInstallArtifact, type InstallArtifact, type ReferrerPayload } from './install-artifact.js';
