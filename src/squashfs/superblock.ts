import { MosError } from '../base/index.js';
import { VERITY_BLOCK_SIZE } from './media-types.js';

/** Squashfs 4.0 superblock facts we need (all little-endian). */
export interface SquashfsSuperblock {
  /** Bytes of filesystem data; verity hash data, when appended, starts at this rounded up to 4096. */
  readonly bytesUsed: number;
  /** 1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd. */
  readonly compressionId: number;
}

const SQUASHFS_MAGIC = 0x73717368; // "hsqs"
export const SQUASHFS_SUPERBLOCK_SIZE = 96;

/** Parses the first 96 bytes of a squashfs image; throws IMAGE_INVALID naming `subject` when it is not one. */
export function parseSquashfsSuperblock(head: Uint8Array, subject: string): SquashfsSuperblock {
  if (head.byteLength < SQUASHFS_SUPERBLOCK_SIZE) {
    throw new MosError({ code: 'IMAGE_INVALID', subject, message: `too short for a squashfs superblock (${head.byteLength} bytes)` });
  }
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0, true) !== SQUASHFS_MAGIC) throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'not a squashfs image (bad magic)' });
  const major = dv.getUint16(28, true);
  if (major !== 4) throw new MosError({ code: 'IMAGE_INVALID', subject, message: `squashfs version ${major} is not supported (want 4)` });
  const bytesUsed = dv.getBigUint64(40, true);
  if (bytesUsed > BigInt(Number.MAX_SAFE_INTEGER)) throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'squashfs bytes_used is out of range' });
  return { bytesUsed: Number(bytesUsed), compressionId: dv.getUint16(20, true) };
}

/** Where appended verity hash data starts: bytes_used rounded up to the verity block size. */
export function verityHashOffset(sb: SquashfsSuperblock): number {
  return Math.ceil(sb.bytesUsed / VERITY_BLOCK_SIZE) * VERITY_BLOCK_SIZE;
}
