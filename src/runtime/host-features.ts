import { readFile } from 'node:fs/promises';
import { exec, exists } from '../host/index.js';
import { IDMAP_DEFAULTS } from './idmap.js';
import type { HostFeatures } from './types.js';

/** Reads what this host offers: AppArmor active or not (decides `lxc.apparmor.profile`). */
export async function probeHostFeatures(): Promise<HostFeatures> {
  const enabled = await readFile('/sys/module/apparmor/parameters/enabled', 'utf8').catch(() => 'N');
  return { apparmor: enabled.trim() === 'Y' && (await exists('/sys/kernel/security/apparmor')) };
}

/** mos's rule: `/proc/self/uid_map` = `0 0 4294967295` (host root) → 100000/65536, else 40000/2000. */
export async function idmapDefaults(): Promise<{ start: number; range: number }> {
  const map = await readFile('/proc/self/uid_map', 'utf8').catch(() => '');
  return map.trim().split(/\s+/).join(' ') === '0 0 4294967295' ? IDMAP_DEFAULTS.hostRoot : IDMAP_DEFAULTS.nested;
}

// Filesystems whose mounts the kernel can idmap (FS_ALLOW_IDMAP). overlayfs is NOT one of them (checked on
// 6.18: LXC fails with "Failed to prepare rootfs"), so the usual overlay root gets a chown shift instead.
const IDMAPPABLE = new Set(['ext2/ext3', 'xfs', 'btrfs', 'f2fs', 'msdos', 'vfat', 'tmpfs']);

/**
 * True when LXC can give `dir` an idmapped rootfs (`lxc.rootfs.options = idmap=container`): the
 * filesystem under it supports idmapped mounts. util-linux 2.38 here has no X-mount.idmap, so this
 * decides by filesystem type (`stat -f`), not by trying.
 */
export async function idmappedMountSupported(dir: string): Promise<boolean> {
  try {
    const { stdout } = await exec(['stat', '-f', '-c', '%T', dir], { timeoutMs: 10_000 });
    return IDMAPPABLE.has(stdout.trim());
  } catch {
    return false;
  }
}
