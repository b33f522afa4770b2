// A cached Debian bookworm base root filesystem, as a squashfs OCI image, for the QEMU guest of the VM
// boot tests: the base layer of the guest's hostfs image. Built once per recipe with mmdebstrap (root
// mode), then reused from <cacheRoot>/debian-base/<key>/oci (tag `base`) by every later call.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildImage } from '../../src/build/index.js';
import { acquireLock, hasProgram, processAlive, readMountInfo } from '../../src/host/index.js';
import { openLayout, type Descriptor } from '../../src/oci/index.js';

export interface DebianBase {
  /** The OCI image layout directory; `oci:<layout>:base` references the image. */
  readonly layout: string;
  readonly tag: string;
  /** Hash of the recipe inputs (names the cache entry). */
  readonly key: string;
  /** The image manifest. */
  readonly descriptor: Descriptor;
}

export interface DebianBaseOptions {
  /** Default `$MOSCTL_TEST_CACHE`, else /var/cache/mosctl-test. */
  readonly cacheRoot?: string;
  /** Told about build steps (mmdebstrap's own `I:`/`W:` lines included); silent by default. */
  readonly log?: (line: string) => void;
}

// Bump when the recipe changes in a way the inputs below do not show (e.g. a new build step).
const RECIPE_VERSION = 'debian-base/4';
const SUITE = 'bookworm';
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';
const SOURCES_FILE = '/etc/apt/sources.list.d/debian.sources';
const HOST_NODE = '/usr/bin/node';
const TAG = 'base';
const LOCK_TIMEOUT_MS = 30 * 60_000;
const MMDEBSTRAP_TIMEOUT_MS = 30 * 60_000;

// Hard dependencies only: minbase installs no recommends (lxc's would add dnsmasq, iptables, rsync, ...).
const PACKAGES = ['systemd-sysv', 'udev', 'kmod', 'dbus', 'lxc', 'iproute2', 'util-linux', 'e2fsprogs', 'procps', 'cryptsetup-bin', 'uidmap', 'fdisk', 'dosfstools', 'efibootmgr'] as const;

// Merged /usr set up the debootstrap way (symlinks + the usr-is-merged package): without it apt picks
// init-system-helpers' first alternative, usrmerge, which drags in perl (~50 MB installed).
const HOOK_DIRS = ['/usr/share/mmdebstrap/hooks/merged-usr'] as const;

const APT_OPTS = [
  'Acquire::Languages "none"', // no Translation-* indexes
  'Acquire::Check-Valid-Until "false"', // a snapshot mirror's Release may be past its Valid-Until
  'APT::Install-Recommends "false"', // mmdebstrap's default, stated so the key shows it
] as const;

// Kept in /etc/dpkg/dpkg.cfg.d/99mmdebstrap inside the tree, so later installs stay small too.
const DPKG_OPTS = [
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/lintian/*',
] as const;

// Files written into the tree (path relative to the root -> content).
const FILES: Readonly<Record<string, string>> = {
  'etc/hostname': 'mosctl-guest\n',
  'etc/hosts': '127.0.0.1\tlocalhost\n127.0.1.1\tmosctl-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n',
  // Empty: systemd makes one up at boot (and keeps it only in memory when /etc is read-only).
  'etc/machine-id': '',
  // mmdebstrap copies the build host's; the guest has no network.
  'etc/resolv.conf': '',
};

// Units masked (-> /dev/null) for a fast, quiet serial-console boot without networking.
const MASKED_UNITS = [
  'serial-getty@ttyS0.service',
  'getty@tty1.service',
  'systemd-timesyncd.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'e2scrub_all.timer',
  'fstrim.timer',
  'systemd-networkd-wait-online.service',
  'lxc-net.service',
  // lxc's autostart: mosctl starts its own containers, and without lxc-net's bridge the unit's
  // wait_for_bridge sleeps 30 s, holding back multi-user.target (and so mos-assess) on every boot.
  'lxc.service',
  // A one-shot ext4 snapshot check: seconds of a TCG guest's only CPU while mosctl boot runs.
  'e2scrub_reap.service',
] as const;

const DEFAULT_TARGET = '/lib/systemd/system/multi-user.target';

// Mount points the initrd moves into the new root, and lxc's container directory.
const DIRS = ['config', 'atomfs-store', 'scratch-writes', 'boot/efi', 'factory/secure', 'var/lib/lxc'] as const;

// Emptied before the image is built (the directories themselves stay, with their modes).
const EMPTIED = ['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'var/lib/apt/lists', 'var/cache/apt'] as const;

// sha256 of the host's node binary, once per process (keyed by size and mtime in case it changes).
let nodeHash: { stamp: string; hash: Promise<string> } | undefined;

/**
 * The Debian bookworm base image, built on first use (needs root, mmdebstrap and the apt mirror; several
 * minutes) and cached under `<cacheRoot>/debian-base/<key>/oci`, tag `base`. Later calls with the same
 * inputs only read the cache. Throws an Error saying what is missing when it cannot build.
 */
export async function debianBaseImage(opts: DebianBaseOptions = {}): Promise<DebianBase> {
  const log = opts.log ?? (() => {});
  const cacheRoot = resolve(opts.cacheRoot ?? process.env.MOSCTL_TEST_CACHE ?? '/var/cache/mosctl-test');
  const mirror = await aptMirror();
  const key = await recipeKey(mirror);
  const base = join(cacheRoot, 'debian-base');
  const entry = join(base, key);
  const layout = join(entry, 'oci');

  // An entry appears by one rename once complete, so its presence means it is usable: no lock needed.
  const cached = await readEntry(layout, key);
  if (cached) return cached;

  await preflight(mirror);
  await mkdir(base, { recursive: true });
  await using _lock = await acquireLock(join(base, '.lock'), { wait: true, timeoutMs: LOCK_TIMEOUT_MS });
  const raced = await readEntry(layout, key); // another process built it while this one waited
  if (raced) return raced;
  await removeStale(base, log);

  const build = join(base, `.build-${key}-${process.pid}`);
  await safeRemove(build);
  await mkdir(build);
  try {
    const rootfs = join(build, 'rootfs');
    const stats = await makeTree(rootfs, mirror, log);
    const staged = join(build, 'entry');
    await mkdir(staged);
    const t0 = Date.now();
    const store = await openLayout(join(staged, 'oci'), { create: true });
    const work = join(build, 'work');
    await mkdir(work);
    const r = await buildImage({ rootfs, dst: store, tag: TAG, workDir: work });
    const imageSeconds = (Date.now() - t0) / 1000;
    const imageBytes = await treeBytes(join(staged, 'oci'));
    log(`debian-base: image ${r.descriptor.digest} built in ${imageSeconds.toFixed(1)} s, layout ${(imageBytes / 2 ** 20).toFixed(1)} MiB`);
    await safeRemove(rootfs);
    const info = { key, recipe: RECIPE_VERSION, suite: SUITE, mirror, packages: PACKAGES, ...stats, imageSeconds, imageBytes, digest: r.descriptor.digest };
    await writeFile(join(staged, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
    await rename(staged, entry);
    return { layout, tag: TAG, key, descriptor: r.descriptor };
  } finally {
    await safeRemove(build);
  }
}

// The first `URIs:` of the host's deb822 sources (its first URI), else deb.debian.org.
async function aptMirror(): Promise<string> {
  let text: string;
  try {
    text = await readFile(SOURCES_FILE, 'utf8');
  } catch {
    return FALLBACK_MIRROR;
  }
  const m = /^URIs:[ \t]*(\S+)/im.exec(text);
  return m?.[1]?.replace(/\/+$/, '') ?? FALLBACK_MIRROR;
}

async function recipeKey(mirror: string): Promise<string> {
  const inputs = {
    recipe: RECIPE_VERSION,
    suite: SUITE,
    mirror,
    packages: PACKAGES,
    hookDirs: HOOK_DIRS,
    aptOpts: APT_OPTS,
    dpkgOpts: DPKG_OPTS,
    node: await hostNodeHash(),
    files: FILES,
    masked: MASKED_UNITS,
    defaultTarget: DEFAULT_TARGET,
    dirs: DIRS,
    emptied: EMPTIED,
  };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

async function hostNodeHash(): Promise<string> {
  let st;
  try {
    st = await stat(HOST_NODE);
  } catch {
    throw new Error(`debian base image: ${HOST_NODE} is missing (the guest gets the host's node binary)`);
  }
  const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
  if (nodeHash?.stamp !== stamp) {
    const hash = new Promise<string>((res, rej) => {
      const h = createHash('sha256');
      createReadStream(HOST_NODE)
        .on('data', (b) => h.update(b))
        .on('error', rej)
        .on('end', () => res(h.digest('hex')));
    });
    nodeHash = { stamp, hash };
    hash.catch(() => (nodeHash = undefined));
  }
  return nodeHash.hash;
}

async function readEntry(layout: string, key: string): Promise<DebianBase | undefined> {
  try {
    await stat(join(layout, 'index.json'));
  } catch {
    return undefined;
  }
  const store = await openLayout(layout);
  return { layout, tag: TAG, key, descriptor: await store.resolve(TAG) };
}

// What a build needs, checked before taking the lock so a host without it fails at once and clearly.
async function preflight(mirror: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('debian base image: building it needs root (mmdebstrap --mode=root, chroot, device nodes)');
  const missing: string[] = [];
  for (const p of ['mmdebstrap', 'mksquashfs', 'veritysetup', 'chroot', 'unshare', 'setpriv']) if (!(await hasProgram(p))) missing.push(p);
  for (const d of HOOK_DIRS) if (!(await isDir(d))) missing.push(`${d} (mmdebstrap >= 1.0's hooks)`);
  if (missing.length > 0) throw new Error(`debian base image: ${missing.join(', ')} not installed (apt-get install mmdebstrap squashfs-tools cryptsetup-bin)`);
  const url = `${mirror}/dists/${SUITE}/InRelease`;
  try {
    const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(20_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    throw new Error(`debian base image: apt mirror ${mirror} is unreachable (${url}: ${e instanceof Error ? e.message : String(e)})`);
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

// Build leftovers of killed runs and entries of other recipes (and a broken one of this recipe: the
// caller found none usable); called with the lock held.
async function removeStale(base: string, log: (line: string) => void): Promise<void> {
  for (const name of await readdir(base)) {
    if (name === '.lock') continue;
    const m = /^\.build-[0-9a-f]+-(\d+)$/.exec(name);
    if (m && Number(m[1]) !== process.pid && processAlive(Number(m[1]))) continue; // pid reused, or a build not under this lock
    if (!m && name.startsWith('.')) continue;
    log(`debian-base: removing stale ${join(base, name)}`);
    await safeRemove(join(base, name));
  }
}

interface TreeStats {
  readonly mmdebstrapSeconds: number;
  readonly packageCount: number;
  readonly treeBytes: number;
}

async function makeTree(rootfs: string, mirror: string, log: (line: string) => void): Promise<TreeStats> {
  const argv = [
    // Killed with this process (a tap timeout), with all its children: mmdebstrap runs as pid 1 of a
    // new pid namespace, killed when unshare is, which is killed when this process dies. Its mounts
    // (/proc, /sys, /dev/pts in root mode) live in a private mount namespace, so none stay on the host.
    'setpriv', '--pdeathsig', 'KILL',
    'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child',
    'mmdebstrap', '--variant=minbase', '--mode=root', `--include=${PACKAGES.join(',')}`,
    ...HOOK_DIRS.map((d) => `--hook-dir=${d}`),
    ...APT_OPTS.map((o) => `--aptopt=${o}`),
    ...DPKG_OPTS.map((o) => `--dpkgopt=${o}`),
    SUITE, rootfs, mirror,
  ];
  log(`debian-base: ${argv.slice(argv.indexOf('mmdebstrap')).join(' ')}`);
  const t0 = Date.now();
  await run(argv, log, MMDEBSTRAP_TIMEOUT_MS);
  const mmdebstrapSeconds = (Date.now() - t0) / 1000;

  const node = join(rootfs, 'usr/bin/node');
  await copyFile(HOST_NODE, node);
  await chmod(node, 0o755);
  const version = (await run(['chroot', rootfs, '/usr/bin/node', '-e', 'console.log(process.version)'], () => {}, 60_000)).trim();
  const hostVersion = (await run([HOST_NODE, '-e', 'console.log(process.version)'], () => {}, 60_000)).trim();
  if (version !== hostVersion) throw new Error(`debian base image: node in the tree printed ${JSON.stringify(version)}, expected ${hostVersion}`);

  const units = join(rootfs, 'etc/systemd/system');
  await mkdir(units, { recursive: true });
  await replaceWithSymlink(join(units, 'default.target'), DEFAULT_TARGET);
  for (const u of MASKED_UNITS) await replaceWithSymlink(join(units, u), '/dev/null');
  for (const [path, text] of Object.entries(FILES)) {
    const file = join(rootfs, path);
    await rm(file, { force: true }); // a symlink (resolv.conf) must not be followed
    await writeFile(file, text, { mode: 0o644 });
  }
  for (const d of DIRS) await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
  for (const d of EMPTIED) await emptyDir(join(rootfs, d));

  const packageCount = (await readFile(join(rootfs, 'var/lib/dpkg/status'), 'utf8')).split('\n').filter((l) => l === 'Status: install ok installed').length;
  const stats = { mmdebstrapSeconds, packageCount, treeBytes: await treeBytes(rootfs) };
  log(`debian-base: mmdebstrap took ${mmdebstrapSeconds.toFixed(1)} s; ${packageCount} packages, tree ${(stats.treeBytes / 2 ** 20).toFixed(1)} MiB; node ${version}`);
  return stats;
}

async function replaceWithSymlink(path: string, target: string): Promise<void> {
  await rm(path, { force: true });
  await symlink(target, path);
}

// Removes a directory's entries, keeping the directory; absent is fine. Never crosses a mount.
async function emptyDir(dir: string): Promise<void> {
  let names: string[];
  try {
    if (!(await lstat(dir)).isDirectory()) return;
    names = await readdir(dir);
  } catch {
    return;
  }
  await refuseMounts(dir);
  for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
}

// Removes a tree that may be left from a killed build: lazily unmounts whatever is mounted inside it
// first (mmdebstrap run without the private namespace), and refuses rather than recurse into a mount.
async function safeRemove(dir: string): Promise<void> {
  const inside = (await readMountInfo()).map((e) => e.mountPoint).filter((p) => p === dir || p.startsWith(`${dir}/`));
  for (const p of inside.sort((a, b) => b.length - a.length)) await run(['umount', '--lazy', p], () => {}, 60_000).catch(() => {});
  await refuseMounts(dir);
  await rm(dir, { recursive: true, force: true });
}

async function refuseMounts(dir: string): Promise<void> {
  const left = (await readMountInfo()).map((e) => e.mountPoint).filter((p) => p === dir || p.startsWith(`${dir}/`));
  if (left.length > 0) throw new Error(`debian base image: ${dir} still has mounts inside (${left.join(', ')}); unmount them first`);
}

// Apparent bytes of regular files under dir (hard links once).
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else if (ent.isFile()) {
        const st = await lstat(p);
        const id = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && seen.has(id)) continue;
        seen.add(id);
        total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}

// Tools run with a clean environment: none of the test runner's NODE_OPTIONS (its --import hooks do not
// exist inside the tree), NODE_EXTRA_CA_CERTS or locale; proxies pass through for apt.
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', HOME: '/root' };
  for (const k of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

// Runs argv, passing each output line to log; returns stdout. On failure the error carries the output tail.
function run(argv: readonly string[], log: (line: string) => void, timeoutMs: number): Promise<string> {
  const [file, ...args] = argv;
  return new Promise((res, rej) => {
    // Through env(1): tap's spawn hook puts its --import back into NODE_OPTIONS whatever env is passed.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', file!, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/', env: childEnv() });
    let stdout = '';
    let tail: string[] = [];
    const lines = (buf: { rest: string }, chunk: Buffer, isOut: boolean) => {
      const text = buf.rest + chunk.toString('utf8');
      // dpkg and apt redraw progress with \r; a \r inside a tap comment breaks tap's parser.
      const parts = text.split(/\r\n|\n|\r/);
      buf.rest = parts.pop() ?? '';
      for (const raw of parts) {
        const l = raw.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
        if (l.trim() === '') continue;
        log(l);
        tail.push(l);
      }
      if (tail.length > 40) tail = tail.slice(-40);
      if (isOut) stdout += chunk.toString('utf8');
    };
    const out = { rest: '' };
    const err = { rest: '' };
    child.stdout.on('data', (b: Buffer) => lines(out, b, true));
    child.stderr.on('data', (b: Buffer) => lines(err, b, false));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(new Error(`debian base image: cannot run ${file}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      for (const rest of [out.rest, err.rest]) if (rest !== '') tail.push(rest);
      if (code === 0) res(stdout);
      else rej(new Error(`debian base image: ${argv.join(' ')} ${sig ? `killed by ${sig}` : `exited ${code}`}\n${tail.slice(-40).join('\n')}`));
    });
  });
}
