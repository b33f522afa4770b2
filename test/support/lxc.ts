import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSubordinateIds, removeContainer, removeSubordinateIds } from '../../src/runtime/index.js';

/** Where busybox-static lives on Debian (`busybox-static` package). */
export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? '/bin/busybox';

/**
 * Builds a minimal busybox rootfs under `dir` (created): `/bin/busybox` with its applets as symlinks,
 * /etc/passwd (root, app 1000:1001, nobody), /etc/group, and the empty dirs LXC mounts onto. Returns its path.
 * Put it in an `lxcSandbox` dir, so it outlives the containers that use it.
 */
export function buildBusyboxRootfs(dir: string): string {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'home/app', 'data']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const r = spawnSync('chroot', [dir, '/bin/busybox', '--install', '-s', '/bin'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`busybox --install failed: ${r.stderr}`);
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\napp:x:1001:\nstaff:x:50:\nnogroup:x:65534:\n');
  return dir;
}

/** A temp dir for LXC tests (`lxcPath` = `<dir>/lxc`) whose containers are stopped before the dir goes. */
export interface LxcSandbox {
  readonly dir: string;
  readonly lxcPath: string;
  /** Registers container `name` (in `lxcPath`) to be stopped, killed if needed, and its cgroups cleaned. */
  track(name: string): void;
}

/**
 * Creates the sandbox and registers ONE teardown that stops every tracked container and only then
 * removes the dir (tap's `t.testdir` is removed BEFORE teardowns run, which would pull the config and
 * rootfs from under a running container). The dir is not removed while anything is mounted under it.
 */
export function lxcSandbox(t: Test): LxcSandbox {
  const dir = mkdtempSync(join(tmpdir(), 'mosctl-lxc-'));
  chmodSync(dir, 0o755); // mkdtemp makes it 0700: an idmapped container root could not reach its rootfs
  const names: string[] = [];
  const lxcPath = join(dir, 'lxc');
  t.teardown(async () => {
    for (const name of names) {
      await removeContainer({ name, lxcPath, timeoutS: 2 }).catch(() => {
        spawnSync('lxc-stop', ['-n', name, '-P', lxcPath, '-k'], { stdio: 'ignore' });
      });
    }
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4]?.startsWith(dir + '/'));
    if (!mounted) rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(lxcPath);
  return { dir, lxcPath, track: (name) => void names.push(name) };
}

/**
 * Makes sure root may map `hostid..+range` (appending to /etc/subuid and /etc/subgid) and removes the
 * lines again in teardown. Use ranges no other test uses: removal would pull them from under it.
 */
export async function allowIdRange(t: Test, r: { hostid: number; range: number }): Promise<void> {
  const added = await ensureSubordinateIds([r]);
  if (added.length > 0) t.teardown(() => removeSubordinateIds([r]).then(() => undefined));
}

/** A process's Uid line fields (real, effective, saved, fs) from /proc. */
export function procUids(pid: number): number[] {
  const status = spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout;
  const line = /^Uid:\s+(.*)$/m.exec(status)?.[1] ?? '';
  return line.trim().split(/\s+/).map(Number);
}

/** Children pids of `pid` (from /proc/<pid>/task/<pid>/children). */
export function childPids(pid: number): number[] {
  const r = spawnSync('cat', [`/proc/${pid}/task/${pid}/children`], { encoding: 'utf8' });
  return r.stdout.trim().split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Creates bridge `name` for the test (no address, no ports: no traffic can leave the host) and
 * deletes it in teardown.
 */
export function createTestBridge(t: Test, name: string): void {
  spawnSync('ip', ['link', 'del', name], { stdio: 'ignore' }); // a leftover of a crashed run
  const r = spawnSync('ip', ['link', 'add', name, 'type', 'bridge'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip link add ${name}: ${r.stderr}`);
  t.teardown(() => {
    spawnSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  });
  spawnSync('ip', ['link', 'set', name, 'up'], { stdio: 'ignore' });
}
