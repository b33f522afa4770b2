/** atomfs names and limits (reference/oci-and-atomfs.md §4.3). */

/** Overlay options atomfs uses. index=off: lowers may be remounted on other devices; xino=on: unique inode
 *  numbers across layers; userxattr: `user.overlay.*` xattrs, required in user namespaces (Linux ≥ 5.11). */
export const OVERLAY_OPTIONS = ['index=off', 'xino=on', 'userxattr'] as const;

/** The kernel copies at most one page of mount data: a longer option string would be cut. */
export const MAX_MOUNT_OPTIONS_BYTES = 4096;

/** Below `<scratch>`: atomfs state shared by every target (old atomfs's MetadataPath). */
export const ATOMFS_DIR = 'atomfs';
/** Below the atomfs dir: one read-only mount per layer, named by its digest hex. */
export const MOUNTS_DIR = 'mounts';
/** The empty second lowerdir for single-layer read-only roots (overlay wants two lowers without an upper). */
export const WORKAROUND_DIR = 'workaround';
/** Below the atomfs dir: markers of blobs whose verity tree or digest was checked. */
export const VERIFIED_DIR = 'verified';
/** Below the atomfs dir: the flock every mount and unmount holds. */
export const LOCK_FILE = '.lock';
/** Below `<scratch>/<target>`: the writable overlay's upper and work dirs. */
export const UPPER_DIR = 'upper';
export const WORK_DIR = 'work';
