// Public surface of src/oci. Helpers working on this folder add their exports here.
export * from './media-types.js';
export type { Descriptor, Platform, ImageManifest, ImageIndex, TransferOptions, ContentSource, ContentTarget, ContentStore, Reference } from './types.js';
export { verified, verifyBytes } from './verify.js';
