import { parseReference, type Logger } from '../base/index.js';
import { openLayout } from './layout/store.js';
import type { RegistryOptions } from './registry/options.js';
import { openRepository } from './registry/repository.js';
import type { ContentStore, Reference } from './types.js';

/** The time and rate limits of registry requests a caller may set (`--stall-timeout`, `--min-rate`, ...). */
export type RegistryLimits = Pick<RegistryOptions, 'requestTimeoutMs' | 'stallTimeoutMs' | 'minBytesPerSecond' | 'rateWindowMs' | 'requestDeadlineMs' | 'retries' | 'retryBaseMs'>;

/** How to reach registries named in a SOURCE or DEST (`--insecure-registry`, `--registry-ca`, auth file, limits). */
export interface RegistryAccess {
  readonly insecureHosts?: readonly string[];
  readonly caFiles?: readonly string[];
  readonly authFile?: string;
  readonly limits?: RegistryLimits;
}

/** The options of {@link openRepository} for `host/name` reached with `access` (the one place they are assembled). */
export function repositoryOptions(host: string, name: string, access: RegistryAccess & { readonly log?: Logger | undefined }): RegistryOptions & { host: string; name: string } {
  return {
    host,
    name,
    ...(access.insecureHosts ? { insecureHosts: access.insecureHosts } : {}),
    ...(access.caFiles ? { caFiles: access.caFiles } : {}),
    ...(access.authFile !== undefined ? { authFile: access.authFile } : {}),
    ...access.limits,
    ...(access.log ? { log: access.log } : {}),
  };
}

/** A SOURCE or DEST opened as a store, with the tag or digest it names there. */
export interface OpenedReference {
  readonly ref: Reference;
  readonly store: ContentStore;
  /** Tag or digest inside the store; undefined when the reference names none. */
  readonly reference: string | undefined;
}

/**
 * Parses and opens a reference: a registry repository (nothing sent yet), or a layout (created when
 * `create`, i.e. as a destination). Throws OCI_REFERENCE_INVALID for malformed references.
 */
export async function openReference(text: string, opts: RegistryAccess & { readonly create?: boolean; readonly log?: Logger }): Promise<OpenedReference> {
  const ref = parseReference(text);
  const reference = ref.digest ?? ref.tag;
  switch (ref.kind) {
    case 'registry': {
      const store = openRepository(repositoryOptions(ref.host, ref.name, opts));
      return { ref, store, reference };
    }
    case 'layout':
      return { ref, store: await openLayout(ref.dir, { create: opts.create ?? false, ...(opts.log ? { log: opts.log } : {}) }), reference };
  }
}
