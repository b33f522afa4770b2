// The VM bench: Debian's kernel (from its package, never installed on the host), QEMU under TCG (KVM
// here is PVM nested virtualisation and cannot run a stock kernel), GPT disks built without loop
// devices, the serial console as the log. See ../shared/reference/vm-boot.md for what was measured.
import type { Test } from 'tap';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { acquireLock } from '../../src/host/index.js';

const execFileP = promisify(execFile);

/** Where built guest inputs are cached by content hash, shared by test files and runs. */
export const CACHE_ROOT = process.env['MOSCTL_TEST_CACHE'] ?? '/var/cache/mosctl-test';

/** Programs the VM tests need on the host (.ci/setup installs them). */
export const VM_PROGRAMS = ['qemu-system-x86_64', 'sfdisk', 'mke2fs', 'xz', 'zstd', 'dpkg-deb', 'apt-get', 'depmod', 'mmdebstrap', 'veritysetup', 'mksquashfs'] as const;

export interface GuestKernel {
  /** The Debian package version string, e.g. 6.1.0-57-amd64. */
  readonly kver: string;
  /** Root of the extracted package: `<modules>/lib/modules/<kver>`. */
  readonly modules: string;
  /** The uncompressed ELF kernel (PVH entry: ~3 s faster under TCG than the bzImage). */
  readonly vmlinux: string;
  readonly vmlinuz: string;
}

async function sh(cmd: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<string> {
  const { stdout } = await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...opts });
  return stdout;
}

/**
 * Debian's current kernel package (the one linux-image-amd64 depends on), downloaded with
 * `apt-get download` and unpacked with `dpkg-deb -x` into the cache: nothing is installed on the host.
 */
export async function guestKernel(): Promise<GuestKernel> {
  const dir = join(CACHE_ROOT, 'kernel');
  await mkdir(dir, { recursive: true });
  await using _lock = await acquireLock(join(dir, '.lock'), { wait: true, timeoutMs: 600_000 });
  const ready = (await readdir(dir)).filter((n) => existsSync(join(dir, n, 'vmlinux')));
  let pkg = process.env['MOSCTL_TEST_KERNEL_PACKAGE'];
  if (pkg === undefined) {
    if (ready.length > 0) pkg = ready.sort().at(-1)!;
    else {
      const deps = await sh('apt-cache', ['depends', 'linux-image-amd64']);
      pkg = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(deps)?.[1];
      if (pkg === undefined) throw new Error('cannot tell which kernel linux-image-amd64 names (apt-cache depends linux-image-amd64)');
    }
  }
  const kver = pkg.replace(/^linux-image-/, '');
  const out = join(dir, pkg);
  if (!existsSync(join(out, 'vmlinux'))) {
    const tmp = `${out}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await sh('apt-get', ['download', '-q', pkg], { cwd: tmp });
    const deb = (await readdir(tmp)).find((n) => n.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${pkg} gave no .deb`);
    await sh('dpkg-deb', ['-x', join(tmp, deb), join(tmp, 'x')]);
    await rm(join(tmp, deb));
    // modules.dep & co. (the package's postinst would make them): dracut needs them; mosb does not.
    await sh('depmod', ['-b', join(tmp, 'x'), kver]);
    await writeFile(join(tmp, 'vmlinux'), await extractVmlinux(await readFile(join(tmp, 'x', 'boot', `vmlinuz-${kver}`))));
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
  }
  return { kver, modules: join(out, 'x'), vmlinux: join(out, 'vmlinux'), vmlinuz: join(out, 'x', 'boot', `vmlinuz-${kver}`) };
}

/** The ELF kernel inside a bzImage (what scripts/extract-vmlinux does): the first xz/zstd stream that unpacks to ELF. */
export async function extractVmlinux(bz: Buffer): Promise<Buffer> {
  const magics: [Buffer, string[]][] = [
    [Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), ['xz', '-dc']],
    [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), ['zstd', '-dc']],
  ];
  for (const [magic, [tool, ...args]] of magics) {
    for (let at = bz.indexOf(magic); at >= 0; at = bz.indexOf(magic, at + 1)) {
      const out = await new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        const child = spawn(tool!, args, { stdio: ['pipe', 'pipe', 'ignore'] });
        child.stdout.on('data', (c: Buffer) => chunks.push(c));
        child.on('close', () => resolve(Buffer.concat(chunks))); // trailing data makes it exit non-zero; the output is whole
        child.stdin.on('error', () => {});
        child.stdin.end(bz.subarray(at));
      });
      if (out.length > 1024 * 1024 && out.readUInt32BE(0) === 0x7f454c46) return out;
    }
  }
  throw new Error('no xz or zstd compressed ELF kernel found in the bzImage');
}

/** GPT partition type GUIDs of mos's layout (reference/mos.md). */
export const PART_TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  'machine-config': 'F79962B9-24E6-9948-9F94-E6BFDAD2771A',
  'machine-store': 'F79962B9-24E6-9948-9F94-E6BFDAD2771B',
  'machine-scratch': 'F79962B9-24E6-9948-9F94-E6BFDAD2771C',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export interface DiskPart {
  readonly label: string;
  readonly sizeMiB: number;
  readonly type?: string;
  /** ext4 filled from this directory (mke2fs -d), or an empty ext4 when absent. */
  readonly from?: string;
  readonly fs?: 'ext4' | 'none';
}

/**
 * A raw GPT disk image with the given partitions (1 MiB aligned, in order), each ext4 made in place
 * with `mke2fs -E offset=` (filled with `-d DIR`): no loop device, no mount on the host.
 */
export async function makeGptDisk(file: string, parts: readonly DiskPart[]): Promise<{ offsets: Record<string, number> }> {
  const total = 2 + parts.reduce((n, p) => n + p.sizeMiB, 0);
  await rm(file, { force: true });
  await writeFile(file, '');
  await execFileP('truncate', ['-s', `${total}M`, file]);
  let start = 1;
  const lines = ['label: gpt', 'unit: sectors', ''];
  const offsets: Record<string, number> = {};
  for (const p of parts) {
    lines.push(`start=${start * 2048}, size=${p.sizeMiB * 2048}, type=${p.type ?? (PART_TYPES as Record<string, string>)[p.label] ?? PART_TYPES.linux}, name="${p.label}"`);
    offsets[p.label] = start * 1024 * 1024;
    start += p.sizeMiB;
  }
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', file], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`sfdisk failed (${code}): ${err}`))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
  for (const p of parts) {
    if (p.fs === 'none') continue;
    const args = ['-q', '-F', '-t', 'ext4', '-m', '0', '-L', p.label.slice(0, 16), '-E', `offset=${offsets[p.label]},root_owner=0:0`];
    if (p.from !== undefined) args.push('-d', p.from);
    await execFileP('mke2fs', [...args, file, `${p.sizeMiB * 1024}k`]);
  }
  return { offsets };
}

/** A sparse copy of a disk image (cp --sparse=always). */
export async function copyDisk(from: string, to: string): Promise<void> {
  await execFileP('cp', ['--sparse=always', from, to]);
}

export interface VmDisk {
  readonly file: string;
  /** UEFI boot order position (QEMU's bootindex; OVMF orders its boot options by it). */
  readonly bootIndex?: number;
  readonly readonly?: boolean;
  readonly format?: 'raw';
}

export interface VmShare {
  readonly path: string;
  readonly tag: string;
  readonly readonly?: boolean;
}

/** OVMF, Debian's UEFI firmware for QEMU (package ovmf): code read-only, variables per machine. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
/** OVMF built with Secure Boot (and SMM, which guards its variables): boots what its db allows once a PK is enrolled. */
export const OVMF_CODE_SECBOOT = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd';

export interface VmOptions {
  /** Direct kernel boot (no firmware menu); absent with `uefi`. */
  readonly kernel?: string;
  readonly initrd?: string;
  readonly append?: string;
  /**
   * Boot through OVMF (q35) with this writable copy of the EFI variables file; `secureBoot`: the
   * Secure Boot build of the firmware ({@link OVMF_CODE_SECBOOT}, SMM on, its flash guarded by it).
   */
  readonly uefi?: { readonly vars: string; readonly secureBoot?: boolean };
  /** An ISO on a virtio-scsi CD-ROM drive (what UEFI boots first when present). */
  readonly cdrom?: string;
  readonly disks?: readonly VmDisk[];
  readonly shares?: readonly VmShare[];
  readonly memMiB?: number;
  /** Hard limit; QEMU is killed by its PID after it. */
  readonly timeoutMs: number;
  /** Stop (kill QEMU) as soon as the console shows this in a complete line (the line is never cut short). */
  readonly until?: RegExp;
  /** Kill that long after `until` matched instead of at once (a crash in the middle of what follows). */
  readonly untilDelayMs?: number;
  /** The console is also written here (appended). */
  readonly logFile?: string;
  /** Extra QEMU arguments (devices: `-device i6300esb -watchdog-action reset`). */
  readonly extraArgs?: readonly string[];
}

export interface VmRun {
  readonly console: string;
  /** Host wall time of each console line after QEMU was spawned, in ms. */
  readonly lines: readonly { readonly atMs: number; readonly text: string }[];
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  /** `until` matched (QEMU then killed). */
  readonly matched: boolean;
  readonly durationMs: number;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/**
 * Boots QEMU (`-accel tcg`, one CPU, serial console on stdout) and collects the console until the guest
 * powers off, `until` matches, or the timeout; every QEMU is stopped by its PID (teardown too).
 */
export async function runVm(t: Test, o: VmOptions): Promise<VmRun> {
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-m', String(o.memMiB ?? 1024), '-smp', '1',
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot', '-monitor', 'none',
  ];
  if (o.kernel !== undefined) args.push('-kernel', o.kernel, '-initrd', o.initrd ?? '', '-append', o.append ?? '');
  if (o.uefi !== undefined) {
    if (o.uefi.secureBoot) args.push('-machine', 'q35,smm=on', '-global', 'driver=cfi.pflash01,property=secure,value=on', '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE_SECBOOT}`);
    else args.push('-machine', 'q35', '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`);
    args.push('-drive', `if=pflash,format=raw,file=${o.uefi.vars}`);
  }
  if (o.cdrom !== undefined) args.push('-device', 'virtio-scsi-pci,id=scsi0', '-device', 'scsi-cd,bus=scsi0.0,drive=cd0,bootindex=0', '-drive', `id=cd0,if=none,media=cdrom,readonly=on,file=${o.cdrom}`);
  args.push(...(o.extraArgs ?? []));
  for (const [i, d] of (o.disks ?? []).entries()) {
    const drive = `file=${d.file},format=${d.format ?? 'raw'},cache=unsafe${d.readonly ? ',readonly=on' : ''}`;
    if (d.bootIndex === undefined) args.push('-drive', `${drive},if=virtio`);
    else args.push('-drive', `${drive},if=none,id=vd${i}`, '-device', `virtio-blk-pci,drive=vd${i},bootindex=${d.bootIndex}`);
  }
  for (const [i, s] of (o.shares ?? []).entries()) {
    args.push('-virtfs', `local,path=${s.path},mount_tag=${s.tag},security_model=none,id=fs${i}${s.readonly ? ',readonly=on' : ''},multidevs=remap`);
  }
  const started = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  };
  t.teardown(stop);
  const log = o.logFile ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
  const lines: { atMs: number; text: string }[] = [];
  let text = '';
  let partial = '';
  let matched = false;
  let timedOut = false;
  const onData = (c: Buffer) => {
    const s = c.toString('utf8');
    text += s;
    log?.write(s);
    partial += s;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    const at = Date.now() - started;
    for (const p of parts) lines.push({ atMs: at, text: p.replace(/\r$/, '') });
    // `until` is matched against whole lines only: a pattern like /FAILED/ must not stop QEMU in the
    // middle of the line that says why.
    if (o.until && !matched && parts.length > 0 && o.until.test(text.slice(0, text.length - partial.length))) {
      matched = true;
      if (o.untilDelayMs) setTimeout(stop, o.untilDelayMs);
      else stop();
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, o.timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  running.delete(child);
  if (partial) lines.push({ atMs: Date.now() - started, text: partial });
  await new Promise<void>((r) => (log ? log.end(r) : r()));
  const keep = process.env['MOSCTL_TEST_CONSOLE_DIR'];
  // The benches pass a bare teardown holder as `t`: no test dir name there.
  if (keep) await writeFile(join(keep, `${basename((t as { testdirName?: string }).testdirName ?? 'vm')}-${started}.log`), lines.map((l) => `${(l.atMs / 1000).toFixed(2).padStart(8)} ${l.text}`).join('\n') + '\n');
  return { console: text, lines, exitCode, timedOut, matched, durationMs: Date.now() - started };
}

/** sha256 hex of strings and files, for cache keys. */
export async function contentKey(parts: readonly (string | { file: string })[]): Promise<string> {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string') h.update(`s${p.length}:${p}`);
    else {
      const st = await stat(p.file);
      h.update(`f${st.size}:`);
      const fh = await open(p.file);
      try {
        for await (const c of fh.createReadStream()) h.update(c as Buffer);
      } finally {
        await fh.close().catch(() => {});
      }
    }
  }
  return h.digest('hex');
}
