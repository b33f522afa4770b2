// Public surface of src/manifest: the three mos formats, parsed and validated as pure functions.
export type {
  ImportFile,
  UserTarget,
  InstallFile,
  InstallTarget,
  InstallManifest,
  StorageItem,
  TargetStorage,
  Network,
  NetworkType,
  PortMap,
  ServiceType,
  UpdateType,
  SysManifest,
  SysTarget,
  UidMap,
  Source,
} from './types.js';
export { MAX_MANIFEST_BYTES, MAX_YAML_ALIASES, MANIFEST_VERSION, RESERVED_LABELS, HOSTFS_NAME } from './constants.js';
export { parseImportFile, checkImportFile, type CheckResult } from './import-file.js';
export { parseInstallManifest, checkInstallFile } from './install-file.js';
export { serializeInstallFile } from './serialize.js';
export { installFileFromImport, type Pin } from './pin.js';
export { parseSysManifest, serializeSysManifest, SYS_SOURCE_RE } from './sys-manifest.js';
export { parseSource } from './source.js';
export { checkManifestFile, type ManifestCheck, type ManifestKind } from './check.js';
export { compareVersions, compareNatural } from './version-order.js';
