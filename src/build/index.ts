// Public surface of src/build: what runs on a release engineer's box (mosb): image build and convert,
// image copy and inspect, publishing signed install manifests.
export { buildImage, convertImage, type BuildImageOptions, type ConvertImageOptions, type BuildImageResult, type BuiltLayer, type ImageConfigOverrides, type ImageSource } from './build-image.js';
export { copyImage, inspectImage, type CopyImageOptions, type CopyImageResult, type InspectImageOptions, type InspectImageResult } from './copy-image.js';
export { publish, parseDestination, type PublishOptions, type PublishResult } from './publish.js';
export { createKeyset, createProject, rotateKeyset, projectPaths, keysetPaths, keysRoot, parseProjectSpec, type KeysetPaths, type ProjectPaths } from './keyset.js';
export { createSiteBundle, createTrustRotation, type CreateSiteBundleOptions, type CreateSiteBundleResult, type CreateTrustRotationOptions } from './site-bundle.js';
export { validateManifestFile, type ValidateManifestResult, type ValidationProblem } from './validate.js';
export { imageBuild, type ImageBuildOptions } from './image-build.js';
export { buildInitrd, INITRD_MODULES, INITRD_PROGRAMS, type BuildInitrdOptions, type BuildInitrdResult, type InitrdCompression } from './initrd.js';
export { bundleMosctl, type BundleResult } from './bundle.js';
export { buildUki, DEFAULT_STUB, type BuildUkiOptions, type BuildUkiResult } from './uki.js';
export { mkboot, ISO_LABEL, type MkbootOptions, type MkbootResult } from './mkboot.js';
export { createBootkit, bootkitPaths, keysetBootkit, MAX_UKI_BYTES, type CreateBootkitOptions, type CreateBootkitResult } from './bootkit.js';
export { createUefiKeys, uefiKeyPaths, writeOvmfVars, enrollVarStore, readVarStore, x509SignatureList, guidBytes, DEFAULT_OVMF_VARS_TEMPLATE, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, UEFI_KEYS, type UefiKeyName, type UefiKeyPaths, type CreateUefiKeysResult, type OvmfVarsResult, type StoredVariable } from './uefi.js';
