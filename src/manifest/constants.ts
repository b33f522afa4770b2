// Named limits and spec strings of the manifest formats (mos.md §3).

/** Largest manifest.yaml / install.json / manifest.json we read: real ones are a few KiB. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** YAML aliases allowed in one document: enough for hand-written anchors, too few for alias bombs. */
export const MAX_YAML_ALIASES = 64;

/** The only manifest format version mos and mosctl know. */
export const MANIFEST_VERSION = 1;

/** Storage labels mos itself uses for its partitions (mos.md §2). */
export const RESERVED_LABELS: readonly string[] = ['esp', 'machine-config', 'machine-store', 'machine-scratch'];

export const UPDATE_TYPES = ['complete', 'partial'] as const;
export const SERVICE_TYPES = ['hostfs', 'container', 'fs-only'] as const;
export const NETWORK_TYPES = ['host', 'none', 'simple'] as const;

/** The target name create-boot-fs mounts as the root filesystem. */
export const HOSTFS_NAME = 'hostfs';

export const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
