import { parseReference, type Logger } from '../base/index.js';
import { openLayout } from './layout/store.js';
import { openRepository } from './registry/repository.js';
import type { ContentStore, Reference } from './types.js';

/** How to reach registries named in a SOURCE or DEST (`--insecure-registry`, `--registry-ca`, auth file). */
export interface RegistryAccess {
  readonly insecureHosts?: readonly string[];
  readonly caFiles?: readonly string[];
  readonly authFile?: string;
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
      const store = openRepository({
        host: ref.host,
        name: ref.name,
        ...(opts.insecureHosts ? { insecureHosts: opts.insecureHosts } : {}),
        ...(opts.caFiles ? { caFiles: opts.caFiles } : {}),
        ...(opts.authFile !== undefined ? { authFile: opts.authFile } : {}),
        ...(opts.log ? { log: opts.log } : {}),
      });
      return { ref, store, reference };
    }
    case 'layout':
      return { ref, store: await openLayout(ref.dir, { create: opts.create ?? false, ...(opts.log ? { log: opts.log } : {}) }), reference };
  }
}
