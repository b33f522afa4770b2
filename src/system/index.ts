// Public surface of src/system: one operation per file. Each area appends its exports below.
export { buildImage, convertImage, type BuildImageOptions, type ConvertImageOptions, type BuildImageResult, type BuiltLayer, type ImageConfigOverrides, type ImageSource } from './build-image.js';
export { status, loadSystem, summarize, type StatusOptions, type StatusResult, type StatusTarget, type LoadedSystem, type LoadedTarget, type InstallVerifier, type InstallFiles } from './status.js';
export { history, type HistoryEntry, type HistoryOptions } from './history.js';
export { copyImage, inspectImage, openReference, type CopyImageOptions, type CopyImageResult, type InspectImageOptions, type InspectImageResult, type OpenedReference, type RegistryAccess } from './copy.js';
export { systemGc, storeDir, type SystemGcOptions, type SystemGcResult } from './gc.js';
export { systemFsck, type SystemFsckOptions, type SystemFsckResult } from './fsck.js';
export { INSTALL_ARTIFACT_TYPE, CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, TARGET_REPOSITORY, targetTag, listReferrers, addReferrer } from './artifacts.js';
export { publish, parseDestination, type PublishOptions, type PublishResult } from './publish.js';
export { install, type InstallOptions, type InstallResult } from './install.js';
export { update, type UpdateOptions, type UpdateResult } from './update.js';
export { rollback, type RollbackOptions, type RollbackResult } from './rollback.js';
export { planUpdate, type UpdatePlan, type PlannedEntry } from './plan-update.js';
export { fetchInstall, type FetchedInstall, type FetchInstallOptions } from './fetch-install.js';
export { pullTargets, openStore, hasImage, targetDescriptor, checkSquashfsImage, type PullTargetsResult } from './pull-targets.js';
export { loadAnchors, installVerifier, verifyTriple, caPathFor, MANIFEST_CA_PATH } from './trust-policy.js';
export { compareVersions, compareNatural } from './version-order.js';
export { mountTarget, createBootFs, umountTarget, scratchDirFor, type MountTargetOptions, type MountTargetResult } from './mount.js';
