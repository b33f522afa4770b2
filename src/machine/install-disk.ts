// `mosctl install --partition`: the live system's installer. Verify the release first (nothing is
// partitioned until it verified against the CA), choose the disk by documented rules, write mos's GPT
// layout (esp, machine-config, machine-store, machine-scratch), make the filesystems, install onto
// machine-config/machine-store exactly as `install` does, put the UKI (--uki, else the release's bootkit
// target's) on the ESP (the removable-media path EFI/BOOT/BOOTX64.EFI and a named entry
// EFI/mosctl/mosctl.efi) and register it with efibootmgr where EFI variables are writable.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MosError, silentLogger, type Logger } from '../base/index.js';
import { exec, hasProgram, readMountInfo, requirePrograms, writeFileAtomic } from '../host/index.js';
import { install, type InstallOptions, type InstallResult } from './install.js';
import { checkEfi, writeEsp, type WriteEspResult } from './esp.js';
import { espBundlePath } from './paths.js';
import { readBundleSource, verifySiteBundleBytes } from './site-bundle.js';
import { caPathFor } from './trust-policy.js';

/** GPT partition type GUIDs of mos's layout (reference/mos.md). */
export const PARTITION_TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  'machine-config': 'F79962B9-24E6-9948-9F94-E6BFDAD2771A',
  'machine-store': 'F79962B9-24E6-9948-9F94-E6BFDAD2771B',
  'machine-scratch': 'F79962B9-24E6-9948-9F94-E6BFDAD2771C',
} as const;
export type PartitionName = keyof typeof PARTITION_TYPES;
const ORDER: readonly PartitionName[] = ['esp', 'machine-config', 'machine-store', 'machine-scratch'];

const MiB = 1024 * 1024;
/** Fixed sizes (MiB); the store takes what is left after scratch. */
export const ESP_MIB = 128;
export const CONFIG_MIB = 64;
export const SCRATCH_MIN_MIB = 256;
/** Whole-disk names never installed onto. */
const NOT_DISKS = /^(loop|ram|zram|dm-|md|nbd|fd)/;

export interface InstallDiskOptions extends InstallOptions {
  /** The disk (`/dev/vda`); default: the only candidate (see {@link chooseDisk}). */
  readonly disk?: string;
  /** Replace a partition table that is not mosctl's own layout. */
  readonly wipe?: boolean;
  /** The UKI to put on the ESP; default the release's `bootkit` target's (none: the ESP stays empty). */
  readonly uki?: string;
  /**
   * A site bundle to put on the new ESP (`EFI/mosctl/site-bundle.json`), e.g. the one the live medium
   * carries: the installed machine takes it at its first boot. Verified against the CA before partitioning.
   */
  readonly siteBundle?: string;
  /** Where the new partitions are mounted while installing (default /run/mosctl/install). */
  readonly staging?: string;
  /** Block devices (`/sys/class/block`); tests point it elsewhere. */
  readonly sysBlock?: string;
}

export interface InstallDiskResult extends InstallResult {
  readonly disk: string;
  readonly partitions: readonly { readonly name: PartitionName; readonly device: string; readonly sizeMiB: number }[];
  readonly reused: boolean;
  /** What went onto the ESP and from where (absent: no --uki and no bootkit target). */
  readonly boot?: WriteEspResult;
  /** The site bundle put on the ESP: its site and version. */
  readonly siteBundle?: { readonly site: string; readonly version: number };
  readonly efiEntry?: string;
  /** Seconds per phase: verify, partition, copy (install), boot. */
  readonly phases: Readonly<Record<'verify' | 'partition' | 'copy' | 'boot', number>>;
}

export interface DiskInfo {
  readonly name: string;
  readonly device: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly removable: boolean;
  /** Partition names (GPT PARTNAME) in order, '' for unnamed ones. */
  readonly partitions: readonly { readonly name: string; readonly device: string }[];
}

/** Whole disks from sysfs: every block device that is not a partition and not a virtual device. */
export async function listDisks(sysBlock = '/sys/class/block'): Promise<DiskInfo[]> {
  const out: DiskInfo[] = [];
  for (const name of (await readdir(sysBlock)).sort()) {
    if (NOT_DISKS.test(name) || existsSync(join(sysBlock, name, 'partition'))) continue;
    const read = async (f: string) => (await readFile(join(sysBlock, name, f), 'utf8').catch(() => '')).trim();
    const parts: { name: string; device: string }[] = [];
    for (const child of (await readdir(join(sysBlock, name)).catch(() => [] as string[])).sort(byNumber)) {
      if (!existsSync(join(sysBlock, name, child, 'partition'))) continue;
      const ev = await readFile(join(sysBlock, name, child, 'uevent'), 'utf8').catch(() => '');
      parts.push({ name: /^PARTNAME=(.*)$/m.exec(ev)?.[1] ?? '', device: `/dev/${child}` });
    }
    out.push({ name, device: `/dev/${name}`, sizeBytes: Number(await read('size')) * 512, readOnly: (await read('ro')) === '1', removable: (await read('removable')) === '1', partitions: parts });
  }
  return out;
}

const byNumber = (a: string, b: string) => Number(/\d+$/.exec(a)?.[0] ?? 0) - Number(/\d+$/.exec(b)?.[0] ?? 0) || a.localeCompare(b);

/** A previous attempt's table: exactly mos's four partitions, in order. */
export function isOurLayout(d: DiskInfo): boolean {
  return d.partitions.length === ORDER.length && d.partitions.every((p, i) => p.name === ORDER[i]);
}

/**
 * The disk rules: never a read-only disk, the live medium (a disk carrying an ISO 9660 volume, or the
 * device of any mounted filesystem: /, /run/mosctl/medium, ...), or one with a mounted partition. With
 * --disk, that disk if it passes; without, the only candidate left, else an error listing them. A disk
 * with a partition table is refused unless --wipe, or its table is mosctl's own layout (a previous
 * attempt, reused).
 */
export async function chooseDisk(opts: { disk?: string; wipe?: boolean; sysBlock?: string }): Promise<{ disk: DiskInfo; reused: boolean }> {
  const disks = await listDisks(opts.sysBlock);
  const mounted = new Set((await readMountInfo()).map((m) => m.source).filter((s) => s.startsWith('/dev/')));
  const why = async (d: DiskInfo): Promise<string | undefined> => {
    if (mounted.has(d.device) || d.partitions.some((p) => mounted.has(p.device))) return 'has a mounted filesystem (the live medium or a disk in use)';
    if (await isIsoMedium(d.device)) return 'carries an ISO 9660 volume (a live medium)';
    if (d.readOnly) return 'is read-only';
    if (d.sizeBytes === 0) return 'has no medium';
    return undefined;
  };
  const pick = async (d: DiskInfo) => {
    const bad = await why(d);
    if (bad) throw new MosError({ code: 'INPUT_INVALID', subject: `disk ${d.device}`, message: `${bad}: not installing onto it` });
    if (d.partitions.length > 0 && !isOurLayout(d) && !opts.wipe) {
      throw new MosError({ code: 'INPUT_INVALID', subject: `disk ${d.device}`, message: `has partitions (${d.partitions.map((p) => p.name || basename(p.device)).join(', ')})`, hint: 'pass --wipe to replace them; everything on the disk is lost' });
    }
    return { disk: d, reused: d.partitions.length > 0 && isOurLayout(d) };
  };
  if (opts.disk !== undefined) {
    const name = basename(opts.disk);
    const d = disks.find((x) => x.name === name);
    if (!d) throw new MosError({ code: 'NOT_FOUND', subject: `disk ${opts.disk}`, message: 'is not a whole disk here', hint: `disks: ${disks.map((x) => x.device).join(', ') || '(none)'}` });
    return pick(d);
  }
  const ok: DiskInfo[] = [];
  const refused: string[] = [];
  for (const d of disks) {
    const bad = await why(d);
    if (bad) refused.push(`${d.device} ${bad}`);
    else ok.push(d);
  }
  if (ok.length === 1) return pick(ok[0]!);
  throw new MosError({
    code: 'INPUT_INVALID',
    subject: 'install --partition',
    message: ok.length === 0 ? `no disk to install onto${refused.length ? ` (${refused.join('; ')})` : ''}` : `several disks could be installed onto: ${ok.map((d) => `${d.device} (${Math.round(d.sizeBytes / MiB)} MiB)`).join(', ')}`,
    hint: 'choose one with --disk DEV',
  });
}

async function isIsoMedium(device: string): Promise<boolean> {
  try {
    const fh = await open(device, 'r');
    try {
      const b = Buffer.alloc(6);
      await fh.read(b, 0, 6, 32768);
      return b.subarray(1).toString('latin1') === 'CD001';
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/** Partition sizes for a disk of `bytes`, or a DISK_TOO_SMALL error naming what is needed. */
export function planLayout(device: string, bytes: number, storeNeed: number): { name: PartitionName; sizeMiB: number }[] {
  const total = Math.floor(bytes / MiB) - 2; // 1 MiB alignment at the front, the backup GPT at the end
  const storeMin = Math.ceil((storeNeed * 1.25) / MiB) + 64;
  const scratch = Math.max(SCRATCH_MIN_MIB, Math.floor(total / 10));
  const need = ESP_MIB + CONFIG_MIB + storeMin + SCRATCH_MIN_MIB + 2;
  if (total < ESP_MIB + CONFIG_MIB + storeMin + SCRATCH_MIN_MIB) {
    throw new MosError({
      code: 'INPUT_INVALID',
      subject: `disk ${device}`,
      message: `is too small: ${Math.floor(bytes / MiB)} MiB, the release needs at least ${need} MiB (esp ${ESP_MIB}, machine-config ${CONFIG_MIB}, machine-store ${storeMin}, machine-scratch ${SCRATCH_MIN_MIB})`,
    });
  }
  const sc = Math.min(scratch, total - ESP_MIB - CONFIG_MIB - storeMin);
  return [
    { name: 'esp', sizeMiB: ESP_MIB },
    { name: 'machine-config', sizeMiB: CONFIG_MIB },
    { name: 'machine-store', sizeMiB: total - ESP_MIB - CONFIG_MIB - sc },
    { name: 'machine-scratch', sizeMiB: sc },
  ];
}

/** The sfdisk script of a layout (1 MiB aligned, in order). */
export function sfdiskScript(layout: readonly { name: PartitionName; sizeMiB: number }[]): string {
  const lines = ['label: gpt', 'unit: sectors', ''];
  let start = 2048;
  for (const p of layout) {
    lines.push(`start=${start}, size=${p.sizeMiB * 2048}, type=${PARTITION_TYPES[p.name]}, name="${p.name}"`);
    start += p.sizeMiB * 2048;
  }
  return `${lines.join('\n')}\n`;
}

/** The bundle file's bytes once verified for the new machine: what is verified is what goes on the ESP. */
async function readVerifiedBundle(file: string, staging: string, capath: string, now: Date | undefined): Promise<{ site: string; version: number; bytes: Uint8Array }> {
  const bytes = await readBundleSource(file);
  const { bundle } = await verifySiteBundleBytes({ root: staging, capath, bytes, subject: file, at: now ?? new Date() });
  return { site: bundle.site, version: bundle.version, bytes };
}

/**
 * Installs SOURCE onto a disk. Order: verify (a dry-run install: signature, CA, manifest, sizes) →
 * choose the disk → partition → mkfs → mount → install → UKI on the ESP (--uki, else the bootkit
 * target's, mounted verified from the new store) → efibootmgr → unmount. Any
 * failure unmounts what it mounted and names the step; the disk is left with mosctl's table, which the
 * next attempt reuses without --wipe.
 */
export async function installDisk(opts: InstallDiskOptions): Promise<InstallDiskResult> {
  const log = opts.log ?? silentLogger;
  const step = (s: string, detail?: string) => opts.onProgress?.({ kind: 'step', step: s, ...(detail !== undefined ? { detail } : {}) });
  await requirePrograms(['sfdisk', 'mkfs.vfat', 'mkfs.ext4'], 'the live image needs fdisk, dosfstools and e2fsprogs');
  if (opts.uki !== undefined) await checkEfi(opts.uki, `UKI ${opts.uki}`);
  const capath = caPathFor(opts.root, opts.capath);
  const staging = opts.staging ?? '/run/mosctl/install';
  const phases = { verify: 0, partition: 0, copy: 0, boot: 0 };
  let t = Date.now();
  const lap = (k: keyof typeof phases) => {
    phases[k] = (Date.now() - t) / 1000;
    t = Date.now();
  };

  step('verify', opts.source);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const { root: _r, ...rest } = opts;
  const dry = await install({ ...rest, root: staging, capath, dryRun: true });
  // Verified once, and the verified bytes are what goes onto the ESP (the file is not read again).
  const site = opts.siteBundle !== undefined ? await readVerifiedBundle(opts.siteBundle, staging, capath, opts.now) : undefined;
  lap('verify');
  const { disk, reused } = await chooseDisk(opts);
  const layout = planLayout(disk.device, disk.sizeBytes, dry.bytesToFetch);
  log.info(`installing ${dry.product} onto ${disk.device} (${Math.round(disk.sizeBytes / MiB)} MiB)${reused ? ', reusing the layout of a previous attempt' : ''}`);

  step('partition', disk.device);
  await exec(['sfdisk', '--wipe', 'always', '--wipe-partitions', 'always', '-q', disk.device], { input: sfdiskScript(layout) });
  const devices = await waitForPartitions(disk, opts.sysBlock);
  const mounts: string[] = [];
  try {
    await exec(['mkfs.vfat', '-F', '32', '-s', '1', '-n', 'ESP', devices.esp]);
    for (const name of ['machine-config', 'machine-store', 'machine-scratch'] as const) {
      await exec(['mkfs.ext4', '-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', name, devices[name]]);
    }
    for (const [name, dir, type] of [['machine-config', join(staging, 'config'), 'ext4'], ['machine-store', join(staging, 'atomfs-store'), 'ext4'], ['esp', join(staging, 'boot', 'efi'), 'vfat']] as const) {
      await mkdir(dir, { recursive: true });
      await exec(['mount', '-t', type, devices[name], dir]);
      mounts.unshift(dir);
    }
    lap('partition');

    step('copy', 'the release onto machine-store');
    await mkdir(join(staging, 'factory', 'secure'), { recursive: true });
    await copyFile(capath, join(staging, 'factory', 'secure', 'manifestCA.pem'));
    const res = await install({ ...rest, root: staging, capath });
    lap('copy');

    step('boot', 'UKI on the ESP');
    const boot = await writeEsp({
      root: staging, esp: join(staging, 'boot', 'efi'), capath, log,
      ...(opts.uki !== undefined ? { uki: opts.uki } : {}), ...(opts.now ? { now: opts.now } : {}), ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (site) {
      await mkdir(dirname(espBundlePath(staging)), { recursive: true });
      await writeFileAtomic(espBundlePath(staging), site.bytes, { mode: 0o644 });
      log.info(`site bundle ${site.site} version ${site.version} on the ESP: the machine takes it at its first boot`);
    }
    const efiEntry = boot ? await registerBootEntry(disk.device, log) : undefined;
    if (!boot) log.warn('no --uki and no bootkit target in the release: the ESP stays empty');
    await exec(['sync']);
    lap('boot');
    return { ...res, disk: disk.device, reused, partitions: layout.map((p) => ({ ...p, device: devices[p.name] })), ...(boot ? { boot } : {}), ...(site ? { siteBundle: { site: site.site, version: site.version } } : {}), ...(efiEntry ? { efiEntry } : {}), phases };
  } finally {
    for (const m of mounts) await exec(['umount', m]).catch((e) => log.warn(`cannot unmount ${m}: ${e instanceof Error ? e.message : String(e)}`));
  }
}

// After sfdisk: the kernel's partition devices, by name, once each has its /dev node (udev or devtmpfs).
async function waitForPartitions(disk: DiskInfo, sysBlock?: string): Promise<Record<PartitionName, string>> {
  if (await hasProgram('udevadm')) await exec(['udevadm', 'settle', '--timeout=10']).catch(() => {});
  const deadline = Date.now() + 15_000;
  for (;;) {
    const d = (await listDisks(sysBlock)).find((x) => x.name === disk.name);
    if (d && isOurLayout(d) && d.partitions.every((p) => existsSync(p.device))) {
      return Object.fromEntries(d.partitions.map((p) => [p.name, p.device])) as Record<PartitionName, string>;
    }
    if (Date.now() > deadline) {
      throw new MosError({ code: 'HOST_EXEC_FAILED', subject: disk.device, message: 'the kernel did not show the new partitions within 15 s', hint: 'run partprobe, then install again (the layout is reused)' });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// A boot entry named mosctl for EFI/mosctl/mosctl.efi on partition 1, first in BootOrder, when the EFI
// variables are writable; otherwise the firmware's removable-media path (EFI/BOOT/BOOTX64.EFI) boots it.
async function registerBootEntry(device: string, log: Logger): Promise<string | undefined> {
  const vars = '/sys/firmware/efi/efivars';
  if (!existsSync(vars) || !(await hasProgram('efibootmgr'))) {
    log.info('no EFI variables (or no efibootmgr): the firmware boots EFI/BOOT/BOOTX64.EFI');
    return undefined;
  }
  if (!(await readMountInfo()).some((m) => m.mountPoint === vars && m.fsType === 'efivarfs')) {
    await exec(['mount', '-t', 'efivarfs', 'efivarfs', vars]).catch((e) => log.warn(`cannot mount efivarfs at ${vars}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`));
  }
  try {
    const list = await exec(['efibootmgr']);
    for (const m of list.stdout.matchAll(/^Boot([0-9A-F]{4})\*? mosctl\b/gm)) await exec(['efibootmgr', '-q', '-b', m[1]!, '-B']);
    await exec(['efibootmgr', '-q', '-c', '-d', device, '-p', '1', '-L', 'mosctl', '-l', '\\EFI\\mosctl\\mosctl.efi']);
    return 'mosctl';
  } catch (e) {
    log.warn(`efibootmgr failed (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): the firmware boots EFI/BOOT/BOOTX64.EFI`);
    return undefined;
  }
}
