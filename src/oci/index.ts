// Public surface of src/oci. Helpers working on this folder add their exports here.
export * from './media-types.js';
export { isRegistryReader } from './types.js';
export type { RegistryReader, Descriptor, Platform, ImageManifest, ImageIndex, TransferOptions, FetchBlobOptions, BlobContent, ContentSource, ContentTarget, ContentStore, Reference } from './types.js';
export { BlobVerifier, verified, verifiedFrom, verifyBytes } from './verify.js';
export { openLayout, LayoutStore, type OpenLayoutOptions } from './layout/store.js';
export { parseLayoutIndex, validateTag, type LayoutIndex, type LayoutTag } from './layout/index-file.js';
export { copy, copyDescriptor, type CopyOptions, type CopyDescriptorOptions, type CopyResult } from './copy.js';
export { fsck, gc, sweepStrays, type FsckOptions, type FsckResult, type GcOptions, type GcResult } from './maintenance.js';
export { childrenOf, isIndexType, isManifestType } from './graph.js';
export { imageContentBytes, parseImageManifest, parseImageIndex, parseJsonObject } from './documents.js';
export { hostPlatform, resolvePlatform, formatPlatform } from './platform.js';
// registry half (references + distribution-spec client)
export { openRepository, RegistryRepository, type RepositoryStats, type FetchedManifest } from './registry/repository.js';
export type { RegistryOptions } from './registry/options.js';
export type { Credentials } from './registry/credentials.js';
export type { PushBlobOptions } from './registry/upload.js';
export { fallbackTag, type ReferrersOptions } from './registry/referrers.js';
export { parseChallenges, type Challenge } from './registry/headers.js';
export { openReference, openEndpoints, openMirrored, registriesConfOf, repositoryOptions, type OpenedReference, type RegistryAccess, type RegistryLimits } from './open-reference.js';
export { FallbackSource } from './registry/fallback.js';
export { endpointsFor, firstThatWorks, loadRegistriesConf, parseRegistriesConf, DEFAULT_REGISTRIES_CONF, type Endpoint, type RegistriesConf, type RegistryEntry } from './registry/mirrors.js';
export { blobPath as layoutBlobPath } from './layout/blobs.js';
export { useDownloader, Downloader, RemoteRepository, downloaderIds, runDownloaderChild, DOWNLOADER_USER, DOWNLOADER_DEFAULT_ID, type DownloaderOptions, type DownloaderIds } from './downloader/index.js';
export { httpGet, type HttpGetOptions } from './http-get.js';
