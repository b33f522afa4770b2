import { join } from 'node:path';

// SPEC.md "Paths": the on-disk layout of a machine, relative to `--root`. This file is the only place
// that joins these names; every other module asks it.

/** Where the initrd puts the manifest CA, relative to the system root. */
export const MANIFEST_CA_PATH = 'factory/secure/manifestCA.pem';

/** Where the upgrade API's client CA is, relative to the system root (distinct from the manifest CA). */
export const API_CLIENT_CA_PATH = 'factory/secure/apiCA.pem';

/**
 * The directories under the root that mosctl writes or mounts on: none of their components may be a
 * symlink that leads out of the root (README "Input limits"). Per-target ones are added by the callers.
 */
export const CONFINED_DIRS = [
  'config/manifest.git', 'atomfs-store/mos', 'scratch-writes/atomfs/mounts', 'scratch-writes/roots', 'storage',
  'mnt/atom', 'mnt/mos', 'run/mosctl', 'var/lib/lxc', 'etc/systemd/system', 'factory/secure',
] as const;

/** Where an accepted site bundle lives (README "Site bundles"): state.json, bundles/<hex>.json, trust/<V>.json. */
export const SITE_DIR = 'config/site';

/**
 * The files a site bundle puts into a root (the new root at boot, or `--dest`), relative to it. mosctl
 * owns exactly these: a newer bundle without one of them removes it.
 */
export const SITE_FILES = {
  /** Debian's update-ca-certificates source dir (a subdirectory of /usr/local/share/ca-certificates is read too). */
  anchorsDir: 'usr/local/share/ca-certificates/mosctl-site',
  /** The site's transport CAs as one PEM bundle (mosctl's registry TLS trusts it too). */
  caBundle: 'etc/mosctl/site/ca.pem',
  /** KEY="VALUE" lines: a systemd EnvironmentFile= and a file sh can source. */
  env: 'etc/mosctl/site/env',
  /** containers-registries.conf v2 drop-in: mosctl (and podman, skopeo) read it. */
  registriesConf: 'etc/containers/registries.conf.d/50-mosctl-site.conf',
  /** containers auth.json (0600): mosctl's last default credentials file. */
  auth: 'etc/mosctl/site/auth.json',
  /** Which bundle is in force: site, version, digest, signer. */
  record: 'etc/mosctl/site/site.json',
} as const;

/** Where a site bundle sits on the ESP (mounted at `boot/efi`): what the initrd and `mosctl boot` look for. */
export function espBundlePath(root: string): string {
  return join(root, 'boot', 'efi', 'EFI', 'mosctl', 'site-bundle.json');
}

/** The site-bundle paths of a root. Pure. */
export function sitePaths(root: string): { dir: string; state: string; bundles: string; trust: string } {
  const dir = join(root, SITE_DIR);
  return { dir, state: join(dir, 'state.json'), bundles: join(dir, 'bundles'), trust: join(dir, 'trust') };
}

/** The absolute paths of {@link SITE_FILES} under `dest`. */
export function siteFilesUnder(dest: string): { [K in keyof typeof SITE_FILES]: string } {
  return Object.fromEntries(Object.entries(SITE_FILES).map(([k, rel]) => [k, join(dest, rel)])) as { [K in keyof typeof SITE_FILES]: string };
}

/** The per-target paths (relative to the root) that CONFINED_DIRS does not already cover. */
export function confinedTargetDirs(target: string): string[] {
  return [`scratch-writes/${target}`, `scratch-writes/roots/${target}`, `mnt/atom/${target}`, `mnt/mos/${target}`, `var/lib/lxc/${target}`];
}

/** The fixed paths of a system root. Pure: nothing is read or created. */
export interface SystemPaths {
  readonly root: string;
  /** `factory/secure/manifestCA.pem`: trusted manifest CA(s), PEM. */
  readonly manifestCa: string;
  /** `factory/secure/apiCA.pem`: the CA API client certificates must chain to. */
  readonly apiClientCa: string;
  /** `factory/secure/api/cert.pem` and `key.pem`: the API server's certificate (chain) and key. */
  readonly apiServerCert: string;
  readonly apiServerKey: string;
  /** `config/operations/`: one JSON record per upgrade API operation (they survive reboots). */
  readonly operationsDir: string;
  /** `config/events.jsonl`: the replayable event journal, one JSON object per line with a `seq`. */
  readonly eventsLog: string;
  /** `config/audit.jsonl`: append-only audit log of every API request that changes something. */
  readonly auditLog: string;
  /** `config/pins.json`: commit ids of pinned generations, whose images gc --keep never removes. */
  readonly pinsFile: string;
  /** `config/boot-state.json`: boot assessment (good generation, the trial and its tries, failed manifests). */
  readonly bootState: string;
  /** `config/boot-events.jsonl`: every boot-assessment state change, appended with fsync. */
  readonly bootEvents: string;
  /** `run/mosctl/booted.json`: what this boot's initrd assembled (generation, assessment state, boot id). */
  readonly bootedRecord: string;
  /** `config/source.json`: the tracked source (`mosctl upgrade` re-resolves it). */
  readonly trackedSource: string;
  /** `config/manifest-sources.json`: where each install manifest (by `<sha>`) was fetched from, for repair. */
  readonly manifestSources: string;
  /** `config/`: the config repository and its lock. */
  readonly configDir: string;
  /** `config/manifest.git/`: generations of the system state (branch master). */
  readonly repoDir: string;
  /** `config/manifest.lock`: the lock every writer holds. */
  readonly lockPath: string;
  /** `atomfs-store/mos/`: the image store, one OCI layout, images tagged by their manifest digest. */
  readonly store: string;
  /** `scratch-writes/`: layer mounts, target roots, overlay upper/work dirs. */
  readonly scratch: string;
  /** `storage/`: volumes of targets, one directory per label. */
  readonly storage: string;
  /** `var/lib/lxc/`: generated LXC configs, one directory per container target. */
  readonly lxcPath: string;
}

/** The layout of `root` (SPEC.md "Paths"). */
export function systemPaths(root: string): SystemPaths {
  const configDir = join(root, 'config');
  return {
    root,
    manifestCa: join(root, MANIFEST_CA_PATH),
    apiClientCa: join(root, API_CLIENT_CA_PATH),
    apiServerCert: join(root, 'factory', 'secure', 'api', 'cert.pem'),
    apiServerKey: join(root, 'factory', 'secure', 'api', 'key.pem'),
    operationsDir: join(configDir, 'operations'),
    eventsLog: join(configDir, 'events.jsonl'),
    auditLog: join(configDir, 'audit.jsonl'),
    pinsFile: join(configDir, 'pins.json'),
    bootState: join(configDir, 'boot-state.json'),
    bootEvents: join(configDir, 'boot-events.jsonl'),
    bootedRecord: join(root, 'run', 'mosctl', 'booted.json'),
    trackedSource: join(configDir, 'source.json'),
    manifestSources: join(configDir, 'manifest-sources.json'),
    configDir,
    repoDir: join(configDir, 'manifest.git'),
    lockPath: join(configDir, 'manifest.lock'),
    store: join(root, 'atomfs-store', 'mos'),
    scratch: join(root, 'scratch-writes'),
    storage: join(root, 'storage'),
    lxcPath: join(root, 'var', 'lib', 'lxc'),
  };
}

/** Where one target's pieces live under the root. Pure. */
export interface TargetPaths {
  /** `mnt/atom/<target>`: where an fs-only target appears. */
  readonly fsOnlyDest: string;
  /** `mnt/mos/<target>`: default destination of `mosctl mount`. */
  readonly mountDest: string;
  /** `scratch-writes/roots/<target>`: a container target's root. */
  readonly containerRoot: string;
  readonly lxcPath: string;
  /** `var/lib/lxc/<target>/mosctl-state.json`: the digest a container runs, for restart decisions. */
  readonly stateFile: string;
  /** `run/mosctl/active/<target>.json`: the digest an fs-only target's mount serves (gone at reboot, like the mount). */
  readonly mountedRecord: string;
  readonly logFile: string;
  readonly storageDir: string;
  /** `scratch-writes/<target>/shift.json`: the uid shift applied to a container's writable root. */
  readonly shiftRecord: string;
  /** `etc/systemd/system/<target>.service`, written with `--systemd`. */
  readonly systemdUnit: string;
}

/** The paths of target `name` under `root`. Pure. */
export function targetPaths(root: string, name: string): TargetPaths {
  const p = systemPaths(root);
  return {
    fsOnlyDest: join(root, 'mnt', 'atom', name),
    mountDest: join(root, 'mnt', 'mos', name),
    containerRoot: join(p.scratch, 'roots', name),
    lxcPath: p.lxcPath,
    stateFile: join(p.lxcPath, name, 'mosctl-state.json'),
    mountedRecord: join(root, 'run', 'mosctl', 'active', `${name}.json`),
    logFile: join(root, 'var', 'log', 'lxc', `${name}.log`),
    storageDir: p.storage,
    shiftRecord: join(p.scratch, name, 'shift.json'),
    systemdUnit: join(root, 'etc', 'systemd', 'system', `${name}.service`),
  };
}
