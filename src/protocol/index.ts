// Public surface of src/protocol: mos's artifact conventions, shared by the machine (mosctl) and the
// builder (mosb): artifact types, target tags and the referrer fallback.
export { INSTALL_ARTIFACT_TYPE, CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, TARGET_REPOSITORY, targetTag, listReferrers, addReferrer } from './artifacts.js';
export { readInstallArtifact, type InstallArtifact, type ReferrerPayload } from './install-artifact.js';
export { BOOTKIT_TARGET, BOOTKIT_TAG, BOOTKIT_VERSION, BOOTKIT_UKI_PATH } from './bootkit.js';
export {
  SITE_BUNDLE_ARTIFACT_TYPE, SITE_BUNDLE_PAYLOAD_TYPE, SITE_TRUST_PAYLOAD_TYPE, SITE_NAME,
  parseSiteBundle, parseTrustSet, bundleLocation, checkEnvEntry, checkProvision, checkAuth, bundleArtifact, pushBundle, fetchBundle,
  type SiteBundle, type SiteTrustSet, type ProvisionSource,
} from './site-bundle.js';
