/** Stacker/atomfs squashfs layer media types and verity annotations (reference/oci-and-atomfs.md §4.1). */

/** Base media type of a squashfs layer; `+zstd` / `+gzip` suffixes name the compression. */
export const SQUASHFS_MEDIA_TYPE = 'application/vnd.stacker.image.layer.squashfs';
export const SQUASHFS_ZSTD_MEDIA_TYPE = `${SQUASHFS_MEDIA_TYPE}+zstd`;
export const SQUASHFS_GZIP_MEDIA_TYPE = `${SQUASHFS_MEDIA_TYPE}+gzip`;
/** The name used before the 2020-12 rename; still read. */
export const LEGACY_SQUASHFS_MEDIA_TYPE = 'application/vnd.oci.image.layer.squashfs';

/** Current verity root-hash annotation on a layer descriptor (lowercase hex). */
export const VERITY_ROOT_HASH_ANNOTATION = 'io.stackeroci.stacker.atomfs_verity_root_hash';
/** Older name written by old stacker and used by mos images; read as a fallback. */
export const LEGACY_VERITY_ROOT_HASH_ANNOTATION = 'io.stackeroci.stacker.squashfs_verity_root_hash';

/** dm-verity data and hash block size used by atomfs. */
export const VERITY_BLOCK_SIZE = 4096;

/** True for every squashfs layer media type we can mount (exact base, `+zstd`, `+gzip`, legacy name). */
export function isSquashfsMediaType(mediaType: string): boolean {
  return [SQUASHFS_MEDIA_TYPE, SQUASHFS_ZSTD_MEDIA_TYPE, SQUASHFS_GZIP_MEDIA_TYPE, LEGACY_SQUASHFS_MEDIA_TYPE].includes(mediaType);
}

/** The verity root hash annotation of a layer, new name first; undefined when absent. */
export function verityRootHashOf(annotations: Readonly<Record<string, string>> | undefined): string | undefined {
  return annotations?.[VERITY_ROOT_HASH_ANNOTATION] ?? annotations?.[LEGACY_VERITY_ROOT_HASH_ANNOTATION];
}
