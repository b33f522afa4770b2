import { createHash } from 'node:crypto';
import { MosError } from '../base/index.js';
import { exec } from '../host/index.js';
import { VERITY_BLOCK_SIZE } from './media-types.js';

/** Deterministic verity parameters derived from the data's sha256, so the same squashfs gets the same hash area. */
export interface VerityParams {
  /** 64 lowercase hex characters (32 bytes, the size veritysetup draws at random by default). */
  readonly salt: string;
  /** RFC 4122 form, version 5 style bits. */
  readonly uuid: string;
}

const UUID_DOMAIN = 'mosb verity uuid v1\n';

/**
 * Salt and UUID for the verity superblock, derived from `dataSha256Hex` (the padded squashfs bytes):
 * a random salt would make every build of the same tree a different blob.
 */
export function verityParamsFor(dataSha256Hex: string): VerityParams {
  if (!/^[a-f0-9]{64}$/.test(dataSha256Hex)) throw new MosError({ code: 'INTERNAL', message: `verity: bad data digest ${dataSha256Hex}` });
  const u = createHash('sha256').update(UUID_DOMAIN).update(dataSha256Hex).digest();
  u[6] = (u[6]! & 0x0f) | 0x50; // version 5 (name-based)
  u[8] = (u[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = u.subarray(0, 16).toString('hex');
  const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  return { salt: dataSha256Hex, uuid };
}

/**
 * Appends a dm-verity hash area (sha256, 4096-byte blocks, hash type 1, with superblock) to `file` at
 * `hashOffset` (a multiple of 4096 covering the data), in the layout atomfs mounts. Returns the root hash.
 */
export async function formatVerity(file: string, opts: { hashOffset: number; params: VerityParams }): Promise<string> {
  const { hashOffset, params } = opts;
  if (hashOffset <= 0 || hashOffset % VERITY_BLOCK_SIZE !== 0) {
    throw new MosError({ code: 'INTERNAL', subject: file, message: `verity hash offset ${hashOffset} is not a positive multiple of ${VERITY_BLOCK_SIZE}` });
  }
  const { stdout } = await exec([
    'veritysetup', 'format', file, file,
    `--hash-offset=${hashOffset}`,
    `--data-blocks=${hashOffset / VERITY_BLOCK_SIZE}`,
    `--data-block-size=${VERITY_BLOCK_SIZE}`,
    `--hash-block-size=${VERITY_BLOCK_SIZE}`,
    '--hash=sha256',
    '--format=1',
    `--salt=${params.salt}`,
    `--uuid=${params.uuid}`,
  ]);
  const m = /^Root hash:\s*([a-f0-9]{64})\s*$/m.exec(stdout);
  if (!m) throw new MosError({ code: 'HOST_EXEC_FAILED', subject: file, message: 'veritysetup format printed no root hash' });
  return m[1]!;
}

/**
 * Checks every data block of `file` against `rootHash` with the hash area at `hashOffset`
 * (`veritysetup verify`, userspace). Throws ATOMFS_VERITY_MISMATCH when they disagree.
 */
export async function verifyVerity(file: string, opts: { rootHash: string; hashOffset: number }): Promise<void> {
  if (!/^[a-f0-9]{64}$/.test(opts.rootHash)) {
    throw new MosError({ code: 'ATOMFS_VERITY_MISMATCH', subject: file, message: `verity root hash ${JSON.stringify(opts.rootHash)} is not 64 lowercase hex characters` });
  }
  try {
    await exec(['veritysetup', 'verify', file, file, opts.rootHash, `--hash-offset=${opts.hashOffset}`]);
  } catch (e) {
    if (e instanceof MosError && e.code === 'HOST_EXEC_FAILED') {
      throw new MosError({
        code: 'ATOMFS_VERITY_MISMATCH',
        subject: file,
        message: `verity data does not match root hash ${opts.rootHash}: ${e.message}`,
        hint: 'the layer is corrupt or was modified after it was built',
        cause: e,
      });
    }
    throw e;
  }
}
