export * from './media-types.js';
export { parseSquashfsSuperblock, verityHashOffset, SQUASHFS_SUPERBLOCK_SIZE, type SquashfsSuperblock } from './superblock.js';
