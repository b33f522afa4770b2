// Public surface of src/atomfs: squashfs layers assembled into overlay roots (reference/oci-and-atomfs.md §4).
export { planMount, describePlan, type LayerInput, type PlannedLayer, type MountStep, type MountPlan, type PlanMountOptions } from './plan.js';
export { mountImage, type MountImageOptions, type MountImageResult, type MountedLayer, type LayerMountMode } from './mount-image.js';
export { unmountImage, type UnmountImageOptions, type UnmountImageResult } from './unmount-image.js';
export { cleanupStale, type CleanupStaleOptions, type CleanupStaleResult } from './cleanup.js';
export { atomfsPaths, writablePaths, type AtomfsPaths } from './paths.js';
export { OVERLAY_OPTIONS, MAX_MOUNT_OPTIONS_BYTES } from './constants.js';
