import type { NETWORK_TYPES, SERVICE_TYPES, UPDATE_TYPES } from './constants.js';

// Field names are mos's JSON/YAML keys (mos.md §3), so values print as the files spell them.

/** `complete` replaces the whole target set; `partial` adds or replaces the named targets. */
export type UpdateType = (typeof UPDATE_TYPES)[number];
export type ServiceType = (typeof SERVICE_TYPES)[number];
export type NetworkType = (typeof NETWORK_TYPES)[number];

/** A forwarded TCP port of a `simple`-network container. */
export interface PortMap {
  readonly host: number;
  readonly container: number;
}

/** A target's network; ipv4/ipv6 (address with optional prefix) and ports only mean something for `simple`. */
export interface Network {
  readonly type: NetworkType;
  readonly ipv4: string;
  readonly ipv6: string;
  /** null where mos writes null (no ports given). */
  readonly ports: readonly PortMap[] | null;
}

/** A volume declared at manifest level; `size` in MiB. */
export interface StorageItem {
  readonly label: string;
  readonly persistent: boolean;
  readonly nsgroup: string;
  readonly size: number;
}

/** A target's use of a declared volume: mounted at `dest` inside the target. */
export interface TargetStorage {
  readonly dest: string;
  readonly label: string;
}

/** A target as users write it in manifest.yaml: `source` to resolve, digest/size optional (checked if given). */
export interface UserTarget {
  readonly service_name: string;
  readonly source: string;
  readonly version: string;
  readonly service_type: ServiceType;
  readonly network: Network;
  readonly nsgroup: string;
  readonly digest?: string;
  readonly size?: number;
  readonly storage: readonly TargetStorage[] | null;
}

/** manifest.yaml, the input of `mosb manifest publish`. */
export interface ImportFile {
  readonly version: 1;
  readonly product: string;
  readonly update_type: UpdateType;
  readonly storage: readonly StorageItem[] | null;
  readonly targets: readonly UserTarget[];
}

/** A target of a signed install manifest: pinned to an image manifest digest and size. */
export interface InstallTarget {
  readonly service_name: string;
  readonly version: string;
  readonly service_type: ServiceType;
  readonly network: Network;
  readonly nsgroup: string;
  readonly digest: string;
  readonly storage: readonly TargetStorage[] | null;
  readonly size: number;
}

/** install.json. `update_type` "" is what mos writes for an unset type and means `partial`. */
export interface InstallFile {
  readonly version: number;
  readonly product: string;
  readonly storage: readonly StorageItem[] | null;
  readonly targets: readonly InstallTarget[];
  readonly update_type: UpdateType | '';
}

/** A parsed install manifest with the exact bytes that were signed; never re-serialize them. */
export interface InstallManifest {
  readonly raw: Uint8Array;
  /** sha256 hex of `raw`: the `<sha>` of `<sha>.json` in the config repository. */
  readonly sha: string;
  readonly value: InstallFile;
}

/** A user-namespace mapping of an nsgroup (`idmap-name`) to its first host id. */
export interface UidMap {
  readonly 'idmap-name': string;
  readonly hostid: number;
}

/** A target of the system manifest: its name and the `<sha>.json` install manifest defining it. */
export interface SysTarget {
  readonly name: string;
  readonly source: string;
  /** Go mos also serializes the target's image manifest and config here; read, kept, never trusted. */
  readonly OCIManifest?: unknown;
  readonly OCIConfig?: unknown;
}

/** manifest.json in config/manifest.git: an index of the installed targets. */
export interface SysManifest {
  readonly uidmaps: readonly UidMap[] | null;
  readonly targets: readonly SysTarget[] | null;
  readonly storage: readonly StorageItem[] | null;
  /** Go-named runtime fields mos writes (install: `{}`, update: null). Preserved, not used. */
  readonly DefaultNic?: string;
  readonly UsedPorts?: Readonly<Record<string, string>> | null;
  readonly IpAddrs?: Readonly<Record<string, string>> | null;
}

/** Where a target image comes from, as written in manifest.yaml: a reference naming a tag or digest. */
export type { Reference as Source } from '../base/index.js';
