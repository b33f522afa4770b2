// The machine the VM tests boot: a signed release (Debian hostfs carrying mosctl, an fs-only target, a
// container target), installed on the host into a root whose config/ and atomfs-store/ become the
// machine-config and machine-store partitions of a GPT disk, a second release on a "USB stick" disk,
// and an initramfs from `mosb initrd build`. Everything is cached under CACHE_ROOT by the hash of what
// it is made from, so a second run of the suite rebuilds nothing.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, open, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildImage, buildInitrd, createKeyset, createProject, publish, keysetPaths } from '../../src/build/index.js';
import { acquireLock } from '../../src/host/index.js';
import { copy, openLayout, parseImageManifest, type Descriptor } from '../../src/oci/index.js';
import { runCli } from './cli.js';
import { debianBaseImage } from './vm-debian.js';
import { CACHE_ROOT, contentKey, guestKernel, makeGptDisk, type GuestKernel } from './vm.js';

const execFileP = promisify(execFile);
const top = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE_VERSION = 'vm-system/3';
export const PRODUCT = 'de6c82c5-2e01-4c92-949b-a6545d30fc06';

/** Extra kernel modules the test initramfs loads: the 9p share the guest's test driver reads. */
export const TEST_MODULES = ['9p', '9pnet_virtio', 'i6300esb'];

/** QEMU's watchdog: a reset (QEMU exits, -no-reboot) when nobody pets it within `i6300esb.heartbeat=` seconds. */
export const WATCHDOG_ARGS = ['-device', 'i6300esb', '-watchdog-action', 'reset'] as const;

export interface VmSystem {
  readonly dir: string;
  readonly kernel: GuestKernel;
  readonly initrd: string;
  /** Pristine machine disk (GPT: machine-config, machine-store, machine-scratch) with release 1.0 installed. */
  readonly disk: string;
  /** The root it was installed into on the host (config/, atomfs-store/, factory/secure/manifestCA.pem). */
  readonly root: string;
  /** ext4 image (no partition table) holding release 1.1 as an oci: layout at /rel (the USB stick). */
  readonly usb: string;
  /**
   * Release layouts on the host: `1.1` (as on the stick), `1.2` (hostfs 1.1 plus a failing health check
   * /etc/mosctl/health.d/50-demo), `hang` (a hostfs whose init sleeps forever) and `crash` (hostfs 1.3, a
   * 30 s assessment window, with a web container that exits 20 s after it starts), each tagged by its version.
   */
  readonly releases: Record<Release, string>;
  /** XDG_DATA_HOME of the keyset `vm` (project `vm:rel`). */
  readonly xdg: string;
  readonly ca: string;
  /** The images layout (hostfs-1.0, hostfs-1.1, tools-1.0, web-1.0). */
  readonly images: string;
  readonly manifests: Record<Release, string>;
  /** Byte offsets of the partitions in `disk`. */
  readonly offsets: Record<string, number>;
  /** The fs-only target's layer: digest, size, hash offset (where verity data starts). */
  readonly toolsLayer: { readonly digest: string; readonly size: number; readonly hashOffset: number; readonly rootHash: string };
  /** hostfs images: manifest digest and top layer (the one carrying mosctl) per version. */
  readonly hostfs: Record<'1.0' | '1.1', { readonly digest: string; readonly topLayer: string }>;
  /** Kernel command line for an installed-machine boot. */
  readonly append: string;
}

type Release = '1.0' | '1.1' | '1.2' | 'hang' | 'crash';

const sh = async (cmd: string, args: readonly string[]) => (await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;

/** The guest's test driver (vmtest.service): prints the boot marker, runs /run/vmtest/run.sh from the 9p share, powers off. */
const VMTEST = `#!/bin/sh
# The boot assessment (mos-assess.service, started before this unit) finishes before the test ends.
while systemctl is-active -q mos-assess.service; do sleep 1; done
echo "VMTEST-BOOTED hostfs=$(cat /etc/hostfs-version) boot=$(systemctl is-active mos-boot-setup.service) uptime=$(cut -d' ' -f1 /proc/uptime)"
mkdir -p /run/vmtest
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmtest /run/vmtest 2>/dev/null && [ -f /run/vmtest/run.sh ]; then
  sh /run/vmtest/run.sh > /run/vmtest/out.log 2>&1
  echo "VMTEST-RC=$?"
  sync
  umount /run/vmtest
fi
echo "VMTEST-DONE"
systemctl poweroff --no-block
`;

const VMTEST_UNIT = `[Unit]
Description=mosctl VM test driver
After=multi-user.target mos-boot-setup.service mos-assess.service
[Service]
Type=oneshot
StandardOutput=journal+console
StandardError=journal+console
ExecStart=/usr/local/sbin/vmtest
[Install]
WantedBy=multi-user.target
`;

/** The test hostfs's assessment: a short window (the default is 300 s); hostfs 1.3's is longer (see CRASH_AFTER). */
const ASSESS_YAML = (version: string) => `window: ${version === '1.3' ? 30 : 5}\ninterval: 1\n`;
/** The `crash` release's web container exits this long after it starts: after its assessment begins, before its window ends. */
const CRASH_AFTER = 20;
const FAILING_CHECK = '#!/bin/sh\necho "demo service: connection refused on 127.0.0.1:8080" >&2\nexit 1\n';

/** The hostfs's own layer: mosctl (the bundle), its boot and assessment units, the test driver, the version file. */
async function hostfsTop(dir: string, version: string, bundle: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'usr/lib'), { recursive: true });
  await cp(bundle, join(dir, 'usr/lib/mosctl'), { recursive: true });
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await copyFile(join(top, 'dracut/90mosctl/mosctl-wrapper.sh'), join(dir, 'usr/bin/mosctl'));
  await chmod(join(dir, 'usr/bin/mosctl'), 0o755);
  await mkdir(join(dir, 'usr/local/sbin'), { recursive: true });
  await writeFile(join(dir, 'usr/local/sbin/vmtest'), VMTEST, { mode: 0o755 });
  const units = join(dir, 'etc/systemd/system');
  await mkdir(join(units, 'multi-user.target.wants'), { recursive: true });
  await copyFile(join(top, 'dracut/hostfs/mos-boot-setup.service'), join(units, 'mos-boot-setup.service'));
  await writeFile(join(units, 'vmtest.service'), VMTEST_UNIT);
  await copyFile(join(top, 'dracut/hostfs/mos-assess.service'), join(units, 'mos-assess.service'));
  await symlink('../mos-assess.service', join(units, 'multi-user.target.wants/mos-assess.service'));
  await mkdir(join(dir, 'etc/mosctl/health.d'), { recursive: true });
  await writeFile(join(dir, 'etc/mosctl/assess.yaml'), ASSESS_YAML(version));
  await writeFile(join(dir, 'etc/mosctl/health.d/10-mosctl'), '#!/bin/sh\nexec mosctl status > /dev/null\n', { mode: 0o755 });
  if (version === '1.2') await writeFile(join(dir, 'etc/mosctl/health.d/50-demo'), FAILING_CHECK, { mode: 0o755 });
  await symlink('../mos-boot-setup.service', join(units, 'multi-user.target.wants/mos-boot-setup.service'));
  await symlink('../vmtest.service', join(units, 'multi-user.target.wants/vmtest.service'));
  // The live medium's installer (runs only with mos.install= on the command line).
  await copyFile(join(top, 'dracut/hostfs/mos-live-install.service'), join(units, 'mos-live-install.service'));
  await symlink('../mos-live-install.service', join(units, 'multi-user.target.wants/mos-live-install.service'));
  await copyFile(join(top, 'dracut/hostfs/live-install'), join(dir, 'usr/lib/mosctl/live-install'));
  await chmod(join(dir, 'usr/lib/mosctl/live-install'), 0o755);
  await writeFile(join(dir, 'etc/hostfs-version'), `${version}\n`);
}

/** An image whose layers are `base`'s with `upper`'s single layer on top (both in `layout`). */
async function stackImage(layout: string, base: Descriptor, upper: Descriptor, tag: string): Promise<Descriptor> {
  const store = await openLayout(layout);
  const read = async (d: Descriptor) => JSON.parse(Buffer.from(await store.fetchBytes(d)).toString('utf8')) as Record<string, any>;
  const bm = await read(base);
  const um = await read(upper);
  const bc = await read(bm['config']);
  const uc = await read(um['config']);
  const config = { ...bc, rootfs: { type: 'layers', diff_ids: [...bc['rootfs'].diff_ids, ...uc['rootfs'].diff_ids] }, history: [...(bc['history'] ?? []), ...(uc['history'] ?? [])] };
  const cbytes = Buffer.from(JSON.stringify(config));
  const cdesc = { mediaType: bm['config'].mediaType, digest: `sha256:${sha(cbytes)}` as const, size: cbytes.length };
  await store.pushBlob(cdesc, (async function* () { yield cbytes; })());
  const manifest = { ...bm, config: cdesc, layers: [...bm['layers'], ...um['layers']] };
  const mbytes = Buffer.from(JSON.stringify(manifest));
  parseImageManifest(mbytes, tag);
  const mdesc = { mediaType: bm['mediaType'] ?? 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(mbytes)}` as const, size: mbytes.length };
  await store.pushManifest(mdesc, mbytes, { tag });
  return mdesc;
}

/** Tags `tag`: the image `desc` (in `layout`) with its config's `config` object changed by `f`, same layers. */
async function reconfigureImage(layout: string, desc: Descriptor, tag: string, f: (c: Record<string, unknown>) => Record<string, unknown>): Promise<Descriptor> {
  const store = await openLayout(layout);
  const m = JSON.parse(Buffer.from(await store.fetchBytes(desc)).toString('utf8')) as Record<string, any>;
  const c = JSON.parse(Buffer.from(await store.fetchBytes(m['config'])).toString('utf8')) as Record<string, any>;
  const cbytes = Buffer.from(JSON.stringify({ ...c, config: f(c['config'] ?? {}) }));
  const cdesc = { mediaType: m['config'].mediaType, digest: `sha256:${sha(cbytes)}` as const, size: cbytes.length };
  await store.pushBlob(cdesc, (async function* () { yield cbytes; })());
  const mbytes = Buffer.from(JSON.stringify({ ...m, config: cdesc }));
  parseImageManifest(mbytes, tag);
  const mdesc = { mediaType: m['mediaType'] ?? 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(mbytes)}` as const, size: mbytes.length };
  await store.pushManifest(mdesc, mbytes, { tag });
  return mdesc;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A hostfs that never reaches userspace: its init sleeps forever (the watchdog's case). */
async function hangRootfs(dir: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'sbin'), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  await writeFile(join(dir, 'sbin/init'), '#!/bin/busybox sh\necho "VMTEST-HANG: this init never starts anything"\nwhile :; do /bin/busybox sleep 3600; done\n', { mode: 0o755 });
}

/** manifest.yaml of a release: hostfs `hostfs`, the tools fs-only target and the web container. */
export function yaml(images: string, hostfs: string, version = `${hostfs}.0`, web = 'web-1.0'): string {
  return [
    'version: 1',
    `product: ${PRODUCT}`,
    'update_type: complete',
    'storage:',
    '  - {label: web-data, persistent: true, nsgroup: web, size: 16}',
    'targets:',
    `  - {service_name: hostfs, source: "oci:${images}:hostfs-${hostfs}", version: "${version}", service_type: hostfs, network: {type: host}}`,
    `  - {service_name: tools, source: "oci:${images}:tools-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}}`,
    `  - {service_name: web, source: "oci:${images}:${web}", version: "1.0.0", service_type: container, nsgroup: web, network: {type: none}, storage: [{dest: /data, label: web-data}]}`,
    '',
  ].join('\n');
}

let shared: Promise<VmSystem> | undefined;

/** The VM system, built once per content key (shared across test files through the cache and a lock). */
export function vmSystem(log: (s: string) => void = () => {}): Promise<VmSystem> {
  shared ??= build(log);
  return shared;
}

async function build(log: (s: string) => void): Promise<VmSystem> {
  const kernel = await guestKernel();
  const base = await debianBaseImage({ log: (l) => l.startsWith('debian-base:') && log(l) });
  const bundle = join(top, 'dist', 'bundle');
  const dracut = join(top, 'dracut');
  const dracutFiles: string[] = [];
  for (const f of (await readdir(dracut, { recursive: true })).sort()) if ((await stat(join(dracut, f))).isFile()) dracutFiles.push(f);
  const key = (
    await contentKey([
      FIXTURE_VERSION, base.key, kernel.kver, VMTEST, VMTEST_UNIT, yaml('', '1.0'),
      { file: join(bundle, 'mosctl.mjs') }, { file: join(bundle, 'mosctl.cjs') }, { file: join(bundle, 'mosctl.cjs.cache') },
      { file: join(bundle, 'downloader.cjs') }, { file: join(bundle, 'downloader.cjs.cache') }, { file: '/usr/bin/node' },
      ...dracutFiles.flatMap((f) => [f, { file: join(dracut, f) }]),
      { file: join(top, 'manifests', 'build-images.sh') },
      ...['initrd.ts', 'kernel-modules.ts', 'cpio.ts'].map((f) => ({ file: join(top, 'src', 'build', f) })),
    ])
  ).slice(0, 16);
  const cacheDir = join(CACHE_ROOT, 'vm-system');
  await mkdir(cacheDir, { recursive: true });
  const dir = join(cacheDir, key);
  const info = join(dir, 'system.json');
  {
    await using _lock = await acquireLock(join(cacheDir, '.lock'), { wait: true, timeoutMs: 30 * 60_000 });
    if (!existsSync(info)) {
      for (const old of await readdir(cacheDir)) if (old !== '.lock' && old !== key) await rm(join(cacheDir, old), { recursive: true, force: true });
      const tmp = `${dir}.tmp`;
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      const sys = await assemble(tmp, kernel, base, bundle, log);
      await writeFile(join(tmp, 'system.json'), JSON.stringify(sys));
      await rename(tmp, dir);
    }
  }
  const rel = JSON.parse(await readFile(info, 'utf8')) as Omit<VmSystem, 'dir' | 'kernel'> & Record<string, unknown>;
  const abs = (p: string) => join(dir, p);
  return {
    ...rel,
    dir,
    kernel,
    initrd: abs(rel.initrd),
    disk: abs(rel.disk),
    root: abs(rel.root),
    usb: abs(rel.usb),
    xdg: abs(rel.xdg),
    ca: abs(rel.ca),
    images: abs(rel.images),
    manifests: rel.manifests,
    releases: Object.fromEntries(Object.entries(rel.releases).map(([k, v]) => [k, `oci:${abs(v)}:${k}`])) as VmSystem['releases'],
  };
}

// Builds everything into `dir`; returns paths relative to it.
async function assemble(dir: string, kernel: GuestKernel, base: Awaited<ReturnType<typeof debianBaseImage>>, bundle: string, log: (s: string) => void) {
  const t0 = Date.now();
  const xdg = join(dir, 'xdg');
  await createKeyset({ name: 'vm', dataHome: xdg });
  const project = await createProject({ keyset: 'vm', project: 'rel', dataHome: xdg });
  const ca = keysetPaths({ keyset: 'vm', dataHome: xdg }).caCert;

  // Images: the Debian base (copied), hostfs 1.0/1.1 = base + a small top layer, tools (fs-only, with
  // incompressible data for the runtime tamper test) and web (busybox httpd container) from build-images.sh.
  const images = join(dir, 'images');
  const store = await openLayout(images, { create: true });
  const baseStore = await openLayout(base.layout);
  await copy({ src: baseStore, dst: store, reference: base.descriptor, tag: 'base' });
  const work = join(dir, 'work');
  await mkdir(work, { recursive: true });
  const hostfs: Record<string, { digest: string; topLayer: string }> = {};
  for (const v of ['1.0', '1.1', '1.2', '1.3']) {
    await hostfsTop(join(work, `top-${v}`), v, bundle);
    const upper = await buildImage({ rootfs: join(work, `top-${v}`), dst: store, tag: `top-${v}`, workDir: work });
    const d = await stackImage(images, base.descriptor, upper.descriptor, `hostfs-${v}`);
    hostfs[v] = { digest: d.digest, topLayer: upper.layers.at(-1)!.digest };
  }
  await hangRootfs(join(work, 'hang'));
  await buildImage({ rootfs: join(work, 'hang'), dst: store, tag: 'hostfs-hang', workDir: work });
  const tools = join(work, 'tools');
  await mkdir(tools, { recursive: true });
  await writeFile(join(tools, 'VERSION'), 'tools 1.0\n');
  await writeFile(join(tools, 'random.bin'), randomBytes(2 * 1024 * 1024));
  const toolsImg = await buildImage({ rootfs: tools, dst: store, tag: 'tools-1.0', workDir: work });
  const ex = join(work, 'examples');
  await sh('sh', [join(top, 'manifests', 'build-images.sh'), ex]);
  const web = await (await openLayout(ex)).resolve('web-1.0');
  await copy({ src: await openLayout(ex), dst: store, reference: web, tag: 'web-1.0' });
  await reconfigureImage(images, web, 'web-crash', (c) => ({ ...c, Entrypoint: ['/bin/sh', '-c', `sleep ${CRASH_AFTER}; echo "web: crashed" >&2; exit 3`], Cmd: null }));
  log(`vm-system: images in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Releases: 1.0 (installed) and 1.1 (on the USB stick), signed by project vm:rel.
  const manifests: Record<string, string> = {};
  const releaseYaml: Record<Release, string> = {
    '1.0': yaml(images, '1.0'),
    '1.1': yaml(images, '1.1'),
    '1.2': yaml(images, '1.2'),
    hang: yaml(images, 'hang', '1.3.0'),
    crash: yaml(images, '1.3', '1.4.0', 'web-crash'),
  };
  for (const [v, out] of [['1.0', join(dir, 'rel-1.0')], ['1.1', join(dir, 'usb', 'rel')], ['1.2', join(dir, 'rel-1.2')], ['hang', join(dir, 'rel-hang')], ['crash', join(dir, 'rel-crash')]] as const) {
    const file = join(work, `install-${v}.yaml`);
    await writeFile(file, releaseYaml[v]);
    const r = await publish({ manifestFile: file, repo: `oci:${out}`, name: `machine/install:${v}`, cert: project.cert, key: project.key });
    manifests[v] = r.digest;
  }

  // Install 1.0 on the host into root/, then make the disk from it.
  const root = join(dir, 'root');
  await mkdir(join(root, 'factory', 'secure'), { recursive: true });
  await copyFile(ca, join(root, 'factory', 'secure', 'manifestCA.pem'));
  const inst = await runCli('mosctl', ['--root', root, 'install', `oci:${join(dir, 'rel-1.0')}:1.0`]);
  if (inst.code !== 0) throw new Error(`install failed: ${inst.stderr}`);
  const disk = join(dir, 'disk.img');
  const { offsets } = await makeGptDisk(disk, [
    { label: 'machine-config', sizeMiB: 32, from: join(root, 'config') },
    { label: 'machine-store', sizeMiB: 640, from: join(root, 'atomfs-store') },
    { label: 'machine-scratch', sizeMiB: 256 },
  ]);
  const usb = join(dir, 'usb.img');
  await execFileP('truncate', ['-s', '640M', usb]);
  await execFileP('mke2fs', ['-q', '-F', '-t', 'ext4', '-m', '0', '-L', 'MOS-USB', '-d', join(dir, 'usb'), usb]);
  await rename(join(dir, 'usb', 'rel'), join(dir, 'rel-1.1'));
  await rm(join(dir, 'usb'), { recursive: true, force: true });

  const initrd = join(dir, 'initrd.img');
  await buildInitrd({ modules: kernel.modules, kver: kernel.kver, ca, out: initrd, extraModules: TEST_MODULES, bundle });
  const tl = parseImageManifest(Buffer.from(await store.fetchBytes(toolsImg.descriptor)), 'tools').layers[0]!;
  const built = toolsImg.layers[0]!;
  await rm(work, { recursive: true, force: true });
  log(`vm-system: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const rel = (p: string) => p.slice(dir.length + 1);
  return {
    initrd: rel(initrd), disk: rel(disk), root: rel(root), usb: rel(usb), xdg: rel(xdg), ca: rel(ca), images: rel(images),
    manifests, offsets, hostfs,
    releases: { '1.0': 'rel-1.0', '1.1': 'rel-1.1', '1.2': 'rel-1.2', hang: 'rel-hang', crash: 'rel-crash' },
    toolsLayer: { digest: tl.digest, size: tl.size, hashOffset: built.hashOffset, rootHash: built.rootHash! },
    append: 'console=ttyS0 panic=-1 quiet loglevel=3 root=soci:name=mosboot,repo=local mos.onfail=poweroff mos.timeout=20',
  };
}

/** Writes `data` at `offset` of file `file` (no truncation). */
export async function pokeFile(file: string, offset: number, data: Uint8Array): Promise<Buffer> {
  const fh = await open(file, 'r+');
  try {
    const old = Buffer.alloc(data.length);
    await fh.read(old, 0, data.length, offset);
    await fh.write(data, 0, data.length, offset);
    return old;
  } finally {
    await fh.close();
  }
}
