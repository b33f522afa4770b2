import { readFile, statfs } from 'node:fs/promises';
import { MosError, describeSystemError } from '../base/index.js';
import { exists } from '../host/index.js';
import { IDMAP_DEFAULTS } from './idmap.js';
import type { HostFeatures } from './types.js';

/**
 * Reads what this host offers: AppArmor usable or not (decides `lxc.apparmor.profile`). Usable means
 * enabled in the kernel AND LXC's container profiles loaded: a kernel with AppArmor on but no
 * profiles (a minimal hostfs without the apparmor package, Debian's kernel in a VM) makes LXC fail
 * every start with "Failed to change AppArmor profile to lxc-container-default-cgns".
 */
export async function probeHostFeatures(): Promise<HostFeatures> {
  const enabled = await readFile('/sys/module/apparmor/parameters/enabled', 'utf8').catch(() => 'N');
  if (enabled.trim() !== 'Y' || !(await exists('/sys/kernel/security/apparmor'))) return { apparmor: false };
  const profiles = await readFile('/sys/kernel/security/apparmor/profiles', 'utf8').catch(() => '');
  return { apparmor: /^lxc-container-default\S*\s/m.test(profiles) };
}

/** mos's rule: `/proc/self/uid_map` = `0 0 4294967295` (host root) → 100000/65536, else 40000/2000. */
export async function idmapDefaults(): Promise<{ start: number; range: number }> {
  const map = await readFile('/proc/self/uid_map', 'utf8').catch(() => '');
  return map.trim().split(/\s+/).join(' ') === '0 0 4294967295' ? IDMAP_DEFAULTS.hostRoot : IDMAP_DEFAULTS.nested;
}

// Filesystems whose mounts the kernel can idmap (FS_ALLOW_IDMAP), by statfs(2) f_type (linux/magic.h).
// overlayfs is NOT one of them (checked on 6.18: LXC fails with "Failed to prepare rootfs"), so the usual
// overlay root gets a chown shift instead.
const IDMAPPABLE: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext2/ext3/ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0xf2f52010, 'f2fs'],
  [0x4d44, 'msdos/vfat'],
  [0x01021994, 'tmpfs'],
]);

/**
 * True when LXC can give `dir` an idmapped rootfs (`lxc.rootfs.options = idmap=container`): the
 * filesystem under it supports idmapped mounts. util-linux 2.38 here has no X-mount.idmap, so this
 * decides by filesystem type (statfs), not by trying. HOST_IO when `dir` cannot be examined.
 */
export async function idmappedMountSupported(dir: string): Promise<boolean> {
  let type: number;
  try {
    type = (await statfs(dir)).type;
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot read the filesystem type: ${describeSystemError(e)}`, cause: e });
  }
  return IDMAPPABLE.has(type);
}
