// Public surface of src/machine: what runs on the machine (mosctl), one operation per file. The on-disk
// layout is in paths.ts; the builder (src/build) is never imported from here, nor the reverse.
export { systemPaths, targetPaths, MANIFEST_CA_PATH, type SystemPaths, type TargetPaths } from './paths.js';
export { loadSystem, type LoadedSystem, type LoadedTarget, type InstallVerifier, type InstallFiles } from './load-system.js';
export { hasImage, targetDescriptor } from './store.js';
export { status, summarize, type StatusOptions, type StatusResult, type StatusTarget } from './status.js';
export { withRuntime, statusModel, cachedStatusModel, type LiveStatus, type StatusModel, type TargetRuntime } from './runtime-view.js';
export { history, type HistoryEntry, type HistoryOptions } from './history.js';
export { install, type InstallOptions, type InstallResult } from './install.js';
export { installDisk, chooseDisk, listDisks, planLayout, PARTITION_TYPES, type InstallDiskOptions, type InstallDiskResult, type DiskInfo } from './install-disk.js';
export { update, type UpdateOptions, type UpdateResult } from './update.js';
export { rollback, type RollbackOptions, type RollbackResult } from './rollback.js';
export { mountTarget, mountRemote, createBootFs, umountTarget, type MountRemoteOptions, type MountTargetOptions, type MountTargetResult, type CreateBootFsOptions, type CreateBootFsResult } from './mount.js';
export { readBootState, readBootEvents, DEFAULT_TRIES, type BootState, type BootEvent, type Trial, type AssessmentState } from './boot-state.js';
export { bootStatus, markGood, markBad, rebootHost, voteBoot, type BootStatus } from './assessment.js';
export { readBootedRecord, type BootChoice, type BootedRecord } from './boot-choice.js';
export { assess, readAssessConfig, ASSESS_DEFAULTS, type AssessOptions, type AssessResult, type AssessConfig } from './assess.js';
export { activate, deactivate, type ActivateOptions, type ActivateResult, type DeactivateOptions, type DeactivateResult } from './activate.js';
export { boot, type BootOptions, type BootResult, type BootTarget } from './boot.js';
export { systemGc, type SystemGcOptions, type SystemGcResult } from './gc.js';
export { systemFsck, type SystemFsckOptions, type SystemFsckResult } from './fsck.js';
export { verifyFile, type VerifyFileOptions, type VerifyFileResult } from './verify.js';
export { applyLive, liveTargets, type ApplyLiveResult } from './apply-live.js';
export {
  OperationEngine, errorOf, isTerminal, performUpdate, type OperationUpdateResult,
  type Operation, type OperationRequest, type OperationAction, type OperationPhase, type OperationMode, type OperationClient,
  type OperationError, type OperationProgress, type EngineEvent, type EngineOptions, type SubmitOptions, type Plan,
} from './operations.js';
export { type UpdateMode, type UpdatePhase, type UpdateChecks } from './update.js';
export { type UpdatePlan } from './plan-update.js';
export { type PullNeed } from './pull-targets.js';
export { appendAudit, readAudit, type AuditEntry } from './audit.js';
export { readPins, setPin, type PinResult } from './pins.js';
export { readTracked, type TrackedSource } from './tracked.js';
export { upgrade, switchSource, type UpgradeResult } from './upgrade.js';
export { repairStore, type RepairOptions, type RepairResult } from './repair.js';
export { useDownloader, runDownloaderChild, DOWNLOADER_USER } from '../oci/index.js';
export {
  verifySiteBundle, applySiteBundle, injectSiteBundle, siteBundleStatus, readSiteState,
  type SiteBundleReport, type SiteState, type InjectResult,
} from './site-bundle.js';
