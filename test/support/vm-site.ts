// Machines for the site-bundle VM tests: mos's GPT layout with a real ESP (vfat, made with mkfs.vfat and
// mtools: no loop device, no mount on the host) that the initrd mounts at /boot/efi, either installed
// (machine-config and machine-store from the VM system's installed root) or uninstalled (empty ext4
// filesystems: a machine waiting to be commissioned); site bundles are put on the ESP with mcopy.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import type { VmSystem } from './vm-system.js';
import { makeGptDisk } from './vm.js';

const execFileP = promisify(execFile);

/** Programs these helpers need beyond the VM bench's. */
export const SITE_PROGRAMS = ['mkfs.vfat', 'mcopy', 'mmd', 'mtype', 'dd', 'openssl'] as const;

/** Where the initrd looks for a site bundle on the ESP. */
export const ESP_BUNDLE = 'EFI/mosctl/site-bundle.json';

const ESP_MIB = 32;

export interface SiteDisk {
  readonly file: string;
  /** Byte offsets of the partitions (esp, machine-config, machine-store, machine-scratch). */
  readonly offsets: Record<string, number>;
}

/**
 * A machine disk with an ESP: `installed` takes machine-config and machine-store from the VM system's
 * installed root (release 1.0), else both are empty ext4 (nothing installed). `esp` maps paths on the
 * ESP (e.g. {@link ESP_BUNDLE}) to local files copied there.
 */
export async function siteDisk(sys: VmSystem, file: string, o: { installed: boolean; esp?: Record<string, string> }): Promise<SiteDisk> {
  const { offsets } = await makeGptDisk(file, [
    { label: 'esp', sizeMiB: ESP_MIB, fs: 'none' },
    o.installed ? { label: 'machine-config', sizeMiB: 32, from: join(sys.root, 'config') } : { label: 'machine-config', sizeMiB: 32 },
    o.installed ? { label: 'machine-store', sizeMiB: 640, from: join(sys.root, 'atomfs-store') } : { label: 'machine-store', sizeMiB: 640 },
    { label: 'machine-scratch', sizeMiB: 256 },
  ]);
  const work = await mkdtemp(join(tmpdir(), 'mosctl-esp-'));
  try {
    const esp = join(work, 'esp.img');
    await execFileP('mkfs.vfat', ['-C', '-n', 'ESP', '-i', '4d4f5345', esp, String(ESP_MIB * 1024)]);
    await execFileP('mmd', ['-i', esp, '::/EFI', '::/EFI/mosctl']);
    await execFileP('dd', [`if=${esp}`, `of=${file}`, 'bs=1M', `seek=${offsets['esp']! / 2 ** 20}`, 'conv=notrunc,sparse', 'status=none']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const disk = { file, offsets };
  for (const [dest, src] of Object.entries(o.esp ?? {})) await putOnEsp(disk, dest, src);
  return disk;
}

/** Copies `src` to `dest` on the disk's ESP (replacing it), in place with mtools. */
export async function putOnEsp(disk: SiteDisk, dest: string, src: string): Promise<void> {
  const img = `${disk.file}@@${disk.offsets['esp']}`;
  const dir = dirname(dest);
  const parts = dir === '.' ? [] : dir.split('/');
  // Each directory level (an existing one is an error mmd reports, and nothing more).
  for (let i = 1; i <= parts.length; i++) await execFileP('mmd', ['-i', img, `::/${parts.slice(0, i).join('/')}`]).catch(() => {});
  await execFileP('mcopy', ['-o', '-i', img, src, `::/${posix.normalize(dest)}`]);
}

/** The file `path` on the disk's ESP, or undefined. */
export async function readEsp(disk: SiteDisk, path: string): Promise<string | undefined> {
  try {
    return (await execFileP('mtype', ['-i', `${disk.file}@@${disk.offsets['esp']}`, `::/${path}`])).stdout;
  } catch {
    return undefined;
  }
}

/** A self-signed CA certificate (P-256) named `cn`, as the site's transport CA; returns the PEM file. */
export async function siteCa(dir: string, name: string, cn: string): Promise<string> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-subj', `/O=mosctl test/CN=${cn}`, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return cert;
}

/** Writes the site's registries.conf (a mirror) and auth.json; returns their paths. */
export async function siteRegistryFiles(dir: string, site: string): Promise<{ registriesConf: string; auth: string }> {
  const registriesConf = join(dir, `${site}-registries.conf`);
  const auth = join(dir, `${site}-auth.json`);
  await writeFile(registriesConf, `[[registry]]\nprefix = "registry.example.com"\nlocation = "registry.example.com"\n[[registry.mirror]]\nlocation = "mirror.${site}.example.net:5000"\n`);
  await writeFile(auth, `${JSON.stringify({ auths: { [`mirror.${site}.example.net:5000`]: { auth: Buffer.from(`${site}:s3cret-${site}`).toString('base64') } } })}\n`);
  return { registriesConf, auth };
}
