import { parseReference, type Logger, type RegistryAccess, type RegistryLimits } from '../base/index.js';
import { openLayout } from './layout/store.js';
import type { RegistryOptions } from './registry/options.js';
import { openRepository } from './registry/repository.js';
import { openReadRepository } from './downloader/index.js';
import { FallbackSource } from './registry/fallback.js';
import { endpointsFor, loadRegistriesConf, type Endpoint, type RegistriesConf } from './registry/mirrors.js';
import type { ContentStore, Reference, RegistryReader } from './types.js';

export type { RegistryAccess, RegistryLimits };

/**
 * The places to fetch `host/name` from (mirrors in order, then the primary; registries.conf), each
 * opened as a repository for reading (through the unprivileged downloader when the process uses one). REGISTRY_BLOCKED for a blocked registry, CONFIG_INVALID for a bad conf.
 */
export function openEndpoints(conf: RegistriesConf | undefined, host: string, name: string, byDigest: boolean, access: RegistryAccess & { readonly log?: Logger | undefined }): { endpoint: Endpoint; store: RegistryReader }[] {
  return endpointsFor(conf, host, name, byDigest).map((endpoint) => ({
    endpoint,
    store: openReadRepository(repositoryOptions(endpoint.host, endpoint.name, endpoint.insecure ? { ...access, insecureHosts: [...(access.insecureHosts ?? []), endpoint.host] } : access)),
  }));
}

/** The registries.conf `access` names (`registriesConf`, else $CONTAINERS_REGISTRIES_CONF, else the default files); read once per operation. */
export function registriesConfOf(access: RegistryAccess): Promise<RegistriesConf | undefined> {
  return loadRegistriesConf(access.registriesConf ?? (process.env['CONTAINERS_REGISTRIES_CONF'] || undefined));
}

/** A repository read through its mirrors: one store when there are none, else a {@link FallbackSource}. */
export function openMirrored(conf: RegistriesConf | undefined, host: string, name: string, byDigest: boolean, access: RegistryAccess & { readonly log?: Logger | undefined }): RegistryReader {
  const eps = openEndpoints(conf, host, name, byDigest, access);
  return eps.length === 1 ? eps[0]!.store : new FallbackSource(eps, `${host}/${name}`);
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
