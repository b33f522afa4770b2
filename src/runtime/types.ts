/** One uid/gid range of an nsgroup, with mos's manifest.json field names (`uidmaps[]`). */
export interface UidMap {
  readonly 'idmap-name': string;
  readonly hostid: number;
}

/** A host port forwarded (TCP) to a container port. */
export interface PortForward {
  readonly host: number;
  readonly container: number;
}

/**
 * Container networking. `host`: the host's network namespace; `none`: a namespace with loopback only;
 * `simple`: a veth on `bridge` (default `lxcbr0`, as mos) with optional static addresses (CIDR; a bare
 * IPv4 address gets /24) and TCP port forwards from the host.
 */
export interface NetworkSpec {
  readonly type: 'host' | 'none' | 'simple';
  readonly ipv4?: string;
  readonly ipv6?: string;
  readonly ipv4Gateway?: string;
  readonly ipv6Gateway?: string;
  readonly ports?: readonly PortForward[];
  readonly bridge?: string;
}

/** A host path bind-mounted into the container at `dest` (absolute, inside the container). */
export interface MountSpec {
  readonly source: string;
  readonly dest: string;
  readonly kind: 'dir' | 'file';
}

/** Levels LXC's `lxc.log.level` accepts. */
export type LxcLogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'NOTICE' | 'WARN' | 'ERROR' | 'CRIT' | 'ALERT' | 'FATAL';

/** Everything `renderLxcConfig` needs to describe one container target. */
export interface ContainerSpec {
  /** LXC container name (the target name). */
  readonly name: string;
  /** The mounted, writable root directory of the container. */
  readonly rootfs: string;
  /** Image Entrypoint + Cmd; must not be empty. */
  readonly command: readonly string[];
  /** Image Env (`KEY=value` each). */
  readonly env: readonly string[];
  readonly workingDir?: string;
  /** `uid[:gid]`; a user name must be resolved first with `resolveSpecUser`. */
  readonly user?: string;
  /** Home of the user, used for HOME when the image env has none (filled by `resolveSpecUser`). */
  readonly home?: string;
  /** Container root = `hostid` on the host, `range` ids mapped. Absent: host uid namespace. */
  readonly idmap?: { readonly hostid: number; readonly range: number };
  /** Idmap the rootfs with an idmapped mount (`lxc.rootfs.options = idmap=container`) instead of chowning it. */
  readonly idmappedRootfs?: boolean;
  readonly network: NetworkSpec;
  readonly mounts: readonly MountSpec[];
  readonly logFile: string;
  /** Default WARN (mos: TRACE, which fills disks). */
  readonly logLevel?: LxcLogLevel;
}

/** What the host offers that changes the rendered config (see `probeHostFeatures`). */
export interface HostFeatures {
  /** AppArmor is active with LXC's profiles loaded: leave LXC's default profile; otherwise `lxc.apparmor.profile = unconfined`. */
  readonly apparmor: boolean;
}

/** A container's state as LXC reports it; ABSENT when it has no config under the lxc path. */
export type ContainerStateName = 'RUNNING' | 'STOPPED' | 'STARTING' | 'STOPPING' | 'ABORTING' | 'FREEZING' | 'FROZEN' | 'THAWED' | 'ABSENT';

export interface ContainerStatus {
  readonly name: string;
  readonly state: ContainerStateName;
  /** Host pid of the container's init, when running. */
  readonly pid?: number;
}
