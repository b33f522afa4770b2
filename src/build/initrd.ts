import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { MosError, type OnProgress } from '../base/index.js';
import { exec, readFileLimited, writeFileAtomic } from '../host/index.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { keysetPaths } from './keyset.js';
import { resolveModules, type ModuleSet } from './kernel-modules.js';

/**
 * The modules the boot path needs: virtio disks, loop (veritysetup maps a blob file through it),
 * squashfs layers, overlay roots, device-mapper verity, and the filesystems of the partitions.
 */
export const INITRD_MODULES = [
  'virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'ahci', 'nvme', 'usb_storage', 'sr_mod',
  'loop', 'squashfs', 'overlay', 'dm_mod', 'dm_verity', 'crc32c_generic', 'ext4', 'vfat', 'nls_cp437', 'nls_ascii', 'isofs',
  // EFI variables (efibootmgr in the live installer): the root has no modules of its own, so the initrd loads it.
  'efivarfs',
] as const;

/**
 * The programs the hook runs besides busybox: node (mosctl), veritysetup (dm-verity devices). Everything
 * else (mount, umount, switch_root, sh, insmod) is busybox.
 */
export const INITRD_PROGRAMS = ['node', 'veritysetup'] as const;

export type InitrdCompression = 'zstd' | 'gzip' | 'none';

export interface BuildInitrdOptions {
  /** Root of the kernel's module tree: `<dir>/lib/modules/<kver>/kernel` (`/` for the running system's). */
  readonly modules: string;
  /** Default: the only version under `<modules>/lib/modules`. */
  readonly kver?: string;
  /** The manifest CA(s), PEM: becomes `/manifestCA.pem` in the initramfs; or `keyset` (its manifest CA). */
  readonly ca?: string;
  readonly keyset?: string;
  readonly out: string;
  /** Extra modules beyond {@link INITRD_MODULES} (e.g. 9p for a test harness). */
  readonly extraModules?: readonly string[];
  /** Directory with `mosctl.mjs` and its `node_modules/fs-ext` (default: this package's dist/bundle). */
  readonly bundle?: string;
  readonly node?: string;
  readonly busybox?: string;
  readonly veritysetup?: string;
  readonly compression?: InitrdCompression;
  /**
   * Extra files: `{ from, to }` with `to` an absolute path in the initramfs. Shell hooks dropped in
   * `/etc/mosctl/initrd.d/*.sh` are sourced, in name order, before the boot flow runs.
   */
  readonly add?: readonly { readonly from: string; readonly to: string }[];
  /** Seconds since the epoch stamped on every member (default SOURCE_DATE_EPOCH, else 0). */
  readonly mtime?: number;
  readonly onProgress?: OnProgress;
}

export interface BuildInitrdResult {
  readonly out: string;
  readonly bytes: number;
  readonly uncompressedBytes: number;
  readonly sha256: string;
  readonly kver: string;
  readonly modules: readonly string[];
  readonly builtin: readonly string[];
  /** Bytes of the cpio members that carry mosctl: the bundle, node and their libraries. */
  readonly mosctlBytes: number;
  readonly programs: readonly string[];
}

/** The directory holding this package's package.json (dist/ and src/ sit at different depths). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'dracut'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new MosError({ code: 'INTERNAL', message: 'cannot find the mosctl package directory (with dracut/)' });
    dir = up;
  }
}

/** Where the bundled single-file mosctl lives in a built checkout. */
export function defaultBundleDir(): string {
  return join(packageRoot(), 'dist', 'bundle');
}

/** The largest single file the initramfs takes (node is ~100 MiB). */
const MAX_MEMBER_BYTES = 512 * 1024 * 1024;

const BUNDLE_FILES = ['mosctl.mjs', 'mosctl.cjs', 'mosctl.cjs.cache', 'downloader.cjs', 'downloader.cjs.cache', 'node_modules/fs-ext/package.json', 'node_modules/fs-ext/fs-ext.js', 'node_modules/fs-ext/build/Release/fs_ext.node'];

/**
 * `mosb initrd build`: a minimal initramfs whose `/init` is mosctl's boot hook (`dracut/initrd/init`):
 * busybox, the kernel modules the boot path needs with their dependencies (load order in
 * `/etc/mosctl/modules.load`), node and veritysetup with their shared libraries, the mosctl bundle, and
 * the manifest CA as `/manifestCA.pem`. Reproducible: members sorted, owner root, one mtime, no host
 * device numbers; the same inputs give the same bytes.
 */
export async function buildInitrd(opts: BuildInitrdOptions): Promise<BuildInitrdResult> {
  const step = (s: string, detail?: string) => opts.onProgress?.({ kind: 'step', step: s, ...(detail !== undefined ? { detail } : {}) });
  const pkg = packageRoot();
  const bundle = opts.bundle ?? defaultBundleDir();
  const mtime = opts.mtime ?? (process.env['SOURCE_DATE_EPOCH'] ? Number(process.env['SOURCE_DATE_EPOCH']) : 0);
  if (!Number.isInteger(mtime) || mtime < 0) throw new MosError({ code: 'USAGE', subject: 'SOURCE_DATE_EPOCH', message: `${process.env['SOURCE_DATE_EPOCH']} is not a number of seconds` });

  if ((opts.ca === undefined) === (opts.keyset === undefined)) throw new MosError({ code: 'USAGE', message: 'name the manifest CA by --ca FILE or --keyset NAME (one of them)' });
  const caFile = opts.ca ?? keysetPaths({ keyset: opts.keyset! }).caCert;
  // A CA bundle is a few KiB; 1 MiB refuses a mistaken or endless file (readFileLimited takes regular files only).
  const caPem = (await readFileLimited(caFile, 1024 * 1024)).toString('utf8');
  checkCa(caPem, caFile);
  const kver = opts.kver ?? (await onlyKernel(opts.modules));
  for (const f of BUNDLE_FILES) {
    if (!existsSync(join(bundle, f))) {
      throw new MosError({ code: 'NOT_FOUND', subject: join(bundle, f), message: 'the mosctl bundle is incomplete', hint: 'npm run build makes dist/bundle (or mosb initrd bundle DIR)' });
    }
  }

  step('modules', kver);
  const mods: ModuleSet = await resolveModules(opts.modules, kver, [...INITRD_MODULES, ...(opts.extraModules ?? [])]);

  const tree = new Tree();
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'newroot', 'sysroot', 'config', 'atomfs-store', 'scratch-writes', 'boot/efi', 'mnt', 'etc/mosctl', 'usr/lib/mosctl']) tree.dir(d);
  tree.add({ path: 'dev/console', kind: 'char', mode: 0o600, major: 5, minor: 1 });
  tree.add({ path: 'dev/null', kind: 'char', mode: 0o666, major: 1, minor: 3 });

  step('programs');
  const busybox = opts.busybox ?? (await firstExisting(['/bin/busybox', '/usr/bin/busybox'], 'busybox (Debian busybox-static)'));
  await tree.file('bin/busybox', busybox, 0o755);
  const node = opts.node ?? (await firstExisting(['/usr/bin/node', '/usr/local/bin/node'], 'node'));
  const before = tree.bytes;
  await tree.program('usr/bin/node', node);
  const veritysetup = opts.veritysetup ?? (await firstExisting(['/usr/sbin/veritysetup', '/sbin/veritysetup'], 'veritysetup (Debian cryptsetup-bin)'));
  await tree.program('usr/sbin/veritysetup', veritysetup);
  for (const f of BUNDLE_FILES) await tree.file(`usr/lib/mosctl/${f}`, join(bundle, f), f.endsWith('.node') ? 0o755 : 0o644);
  await tree.file('usr/bin/mosctl', join(pkg, 'dracut', '90mosctl', 'mosctl-wrapper.sh'), 0o755);
  const mosctlBytes = tree.bytes - before;
  // busybox applets last, where no real program sits.
  const { stdout } = await exec([busybox, '--list-full']);
  for (const applet of stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
    if (!tree.has(applet) && applet !== 'bin/busybox') tree.add({ path: applet, kind: 'symlink', target: '/bin/busybox' });
  }

  step('hook');
  await tree.file('init', join(pkg, 'dracut', 'initrd', 'init'), 0o755);
  await tree.file('usr/lib/mosctl/mosctl-lib.sh', join(pkg, 'dracut', '90mosctl', 'mosctl-lib.sh'), 0o644);
  tree.text('manifestCA.pem', caPem, 0o644);
  for (const a of opts.add ?? []) {
    const rel = a.to.replace(/^\/+/, '');
    if (!a.to.startsWith('/') || rel === '' || rel.split('/').some((p) => p === '..' || p === '.' || p === '')) {
      throw new MosError({ code: 'USAGE', subject: '--add', message: `${JSON.stringify(a.to)} is not an absolute path inside the initramfs` });
    }
    const st = await stat(a.from).catch(() => undefined);
    if (!st) throw new MosError({ code: 'NOT_FOUND', subject: a.from, message: 'does not exist (--add takes files)' });
    if (!st.isFile()) throw new MosError({ code: 'INPUT_INVALID', subject: a.from, message: 'is not a regular file (--add takes files)' });
    if (tree.has(rel)) throw new MosError({ code: 'USAGE', subject: '--add', message: `${a.to} is already part of the initramfs` });
    await tree.file(rel, a.from, st.mode & 0o777);
  }
  for (const m of mods.modules) tree.data(`lib/modules/${mods.kver}/${m.rel}`, m.data, 0o644);
  tree.text('etc/mosctl/modules.load', mods.modules.map((m) => `${m.rel}\n`).join(''), 0o644);
  tree.text(
    'etc/mosctl/initrd.json',
    `${JSON.stringify({ kver: mods.kver, modules: mods.modules.map((m) => m.name), builtin: mods.builtin, programs: ['busybox', ...INITRD_PROGRAMS], caSha256: sha256(caPem) }, null, 2)}\n`,
    0o644,
  );

  step('archive');
  const cpio = writeCpio(tree.entries(), { mtime });
  const compression = opts.compression ?? 'zstd';
  const body = await compress(cpio, compression);
  await writeFileAtomic(opts.out, body, { mode: 0o644 });
  return {
    out: opts.out,
    bytes: body.length,
    uncompressedBytes: cpio.length,
    sha256: sha256(body),
    kver: mods.kver,
    modules: mods.modules.map((m) => m.name),
    builtin: mods.builtin,
    mosctlBytes,
    programs: ['busybox', ...INITRD_PROGRAMS],
  };
}

async function onlyKernel(modules: string): Promise<string> {
  const dir = join(modules, 'lib', 'modules');
  const found = await readdir(dir).catch(() => [] as string[]);
  if (found.length !== 1) {
    throw new MosError({ code: 'USAGE', subject: dir, message: found.length === 0 ? 'holds no kernel module tree' : `holds ${found.length} kernels (${found.join(', ')})`, hint: 'pass --kver VERSION' });
  }
  return found[0]!;
}

const sha256 = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');

function checkCa(pem: string, subject: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new MosError({ code: 'TRUST_PEM_INVALID', subject, message: 'holds no PEM certificate' });
  for (const b of blocks) {
    let c: X509Certificate;
    try {
      c = new X509Certificate(b);
    } catch (e) {
      throw new MosError({ code: 'TRUST_PEM_INVALID', subject, message: `a certificate does not parse: ${(e as Error).message}` });
    }
    if (!c.ca) throw new MosError({ code: 'TRUST_CERT_INVALID', subject, message: `${c.subject.replace(/\n/g, ', ')} is not a CA certificate (basicConstraints CA:FALSE)` });
  }
}

async function firstExisting(paths: readonly string[], what: string): Promise<string> {
  for (const p of paths) if (existsSync(p)) return p;
  throw new MosError({ code: 'HOST_TOOL_MISSING', subject: what, message: `not found at ${paths.join(' or ')}`, hint: 'install it, or pass its path' });
}

async function compress(cpio: Buffer, how: InitrdCompression): Promise<Buffer> {
  if (how === 'none') return cpio;
  if (how === 'gzip') return gzipSync(cpio, { level: 9 });
  // One thread and a fixed level: zstd's output then depends only on its input and version.
  return new Promise((resolve, reject) => {
    const child = execFile('zstd', ['-q', '-10', '-T1', '-c'], { encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(new MosError({ code: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'HOST_TOOL_MISSING' : 'HOST_EXEC_FAILED', subject: 'zstd', message: `cannot compress the initramfs: ${err.message}`, hint: 'install zstd or pass --compression gzip' }));
      else resolve(stdout);
    });
    child.stdin?.end(cpio);
  });
}

/** The initramfs tree being assembled: parents made on demand, each path once. */
class Tree {
  private readonly map = new Map<string, CpioEntry>();
  bytes = 0;

  has(path: string): boolean {
    return this.map.has(path);
  }

  add(e: CpioEntry): void {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) this.dir(parts.slice(0, i).join('/'));
    const old = this.map.get(e.path);
    if (old !== undefined && !(old.kind === 'dir' && e.kind === 'dir')) throw new MosError({ code: 'INTERNAL', message: `initrd: ${e.path} twice` });
    this.map.set(e.path, e);
  }

  dir(path: string): void {
    if (this.map.get(path)?.kind === 'dir') return;
    this.add({ path, kind: 'dir', mode: 0o755 });
  }

  data(path: string, data: Uint8Array, mode: number): void {
    this.add({ path, kind: 'file', mode, data });
    this.bytes += data.length;
  }

  text(path: string, text: string, mode: number): void {
    this.data(path, Buffer.from(text, 'utf8'), mode);
  }

  async file(path: string, from: string, mode: number): Promise<void> {
    // node, a library, a module or an --add file: 512 MiB refuses a device, FIFO or runaway file
    this.data(path, await readFileLimited(from, MAX_MEMBER_BYTES), mode);
  }

  /** An ELF program and every shared library `ldd` resolves for it, at the paths the loader looks. */
  async program(path: string, from: string): Promise<void> {
    await this.file(path, from, 0o755);
    for (const lib of await sharedLibraries(from)) {
      const rel = lib.replace(/^\/+/, '');
      if (!this.has(rel)) await this.file(rel, await realpath(lib), 0o755);
    }
  }

  entries(): CpioEntry[] {
    return [...this.map.values()];
  }
}

/** Absolute paths of the shared libraries (and the loader) a dynamically linked program needs. */
export async function sharedLibraries(program: string): Promise<string[]> {
  let out: string;
  try {
    ({ stdout: out } = await exec(['ldd', program]));
  } catch (e) {
    // "not a dynamic executable": a static program needs nothing
    if (e instanceof MosError && /not a dynamic executable/.test(e.message)) return [];
    throw e;
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    if (/=>\s*not found/.test(line)) throw new MosError({ code: 'HOST_TOOL_MISSING', subject: program, message: `needs a library that is missing: ${line.trim()}` });
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs.sort();
}
