export * from './media-types.js';
export { parseSquashfsSuperblock, verityHashOffset, SQUASHFS_SUPERBLOCK_SIZE, type SquashfsSuperblock } from './superblock.js';
export { buildSquashfsLayer, mksquashfsHasZstd, fileDigest, type BuildSquashfsLayerOptions, type LayerBuild, type SquashfsCompression } from './layer.js';
export { formatVerity, verifyVerity, verityParamsFor, type VerityParams } from './verity.js';
export { OVERLAY_OPAQUE_XATTRS, OCI_WHITEOUT_PREFIX, OCI_OPAQUE_MARKER, isOverlayWhiteout, pseudoWhiteoutLines, setOpaque, findOpaqueDirs } from './whiteouts.js';
export { unpackSquashfsLayers } from './unpack.js';
export { diffTrees, materializeDelta, type TreeDelta } from './delta.js';
export { extractTarLayer, type ExtractedTarLayer, type TarCompression } from './tar-layer.js';
