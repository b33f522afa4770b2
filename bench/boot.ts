// bench/boot: a real boot of the VM bench machine (QEMU under TCG, Debian's kernel, the initramfs of
// `mosb initrd build`, the Debian hostfs with systemd), phase by phase, and `mosctl create-boot-fs` in
// the guest against a shell script doing the same mounts in the same guest (dm-verity open of each
// hostfs layer, squashfs mounts, the overlay), alternated. Also the bytes mosctl adds to an initramfs.
// Needs root and what .ci/setup installs. Usage: npx tsx bench/boot.ts [RUNS]
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInitrd } from '../src/build/index.js';
import { openLayout, parseImageManifest } from '../src/oci/index.js';
import { verityRootHashOf, parseSquashfsSuperblock, verityHashOffset } from '../src/squashfs/index.js';
import { copyDisk, runVm, type VmRun } from '../test/support/vm.js';
import { TEST_MODULES, vmSystem } from '../test/support/vm-system.js';

const RUNS = Number(process.argv[2] ?? 5);
const top = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'mosctl-bench-boot-'));
const fakeTest = { teardown: (fn: () => void) => process.on('exit', fn) } as unknown as Parameters<typeof runVm>[0];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (x: number) => `${x.toFixed(2)} s`;

try {
  const sys = await vmSystem((l) => console.error(l));

  // 1. What mosctl adds to an initramfs: the bundle and node (with its libraries), zstd -10 like the initrd.
  const zst = (file: string) => execFileSync('sh', ['-c', `zstd -q -10 -T1 -c '${file}' | wc -c`], { encoding: 'utf8' }).trim();
  const bundle = join(top, 'dist', 'bundle');
  const parts = ['mosctl.mjs', 'mosctl.cjs', 'mosctl.cjs.cache', 'node_modules/fs-ext/build/Release/fs_ext.node'].map((f) => join(bundle, f));
  const bundleRaw = parts.reduce((n, f) => n + readFileSync(f).length, 0);
  const bundleZ = parts.reduce((n, f) => n + Number(zst(f)), 0);
  const nodeRaw = readFileSync('/usr/bin/node').length;
  const nodeZ = Number(zst('/usr/bin/node'));
  const initrdBytes = readFileSync(sys.initrd).length;

  // 2. A whole boot: phases from the console (host clock at each line; guest uptime where the line has it).
  const disk = join(work, 'disk.img');
  await copyDisk(sys.disk, disk);
  const share = join(work, 'share');
  execFileSync('mkdir', ['-p', share]);
  writeFileSync(join(share, 'run.sh'), 'systemd-analyze || true\n');
  const boot = await runVm(fakeTest, {
    kernel: sys.kernel.vmlinux, initrd: sys.initrd, append: sys.append,
    disks: [{ file: disk }, { file: sys.usb, readonly: true }], shares: [{ path: share, tag: 'vmtest' }],
    timeoutMs: 600_000, until: /VMTEST-DONE|mosctl-boot: FAILED/,
  });
  const at = (r: VmRun, re: RegExp) => r.lines.find((l) => re.test(l.text));
  const uptime = (r: VmRun, re: RegExp) => Number(/uptime=([0-9.]+)/.exec(at(r, re)?.text ?? '')?.[1] ?? NaN);
  const initrdStart = at(boot, /mosctl-boot: initrd start/);
  if (!initrdStart) throw new Error(`the boot did not reach the initrd:\n${boot.console.slice(-4000)}`);
  // Guest uptime 0 on the host clock: the initrd-start line minus the uptime it reports.
  const kernelAt = initrdStart.atMs / 1000 - uptime(boot, /mosctl-boot: initrd start/);
  const phase = (re: RegExp) => (at(boot, re)?.atMs ?? NaN) / 1000;
  const rows: [string, number][] = [
    ['QEMU started', 0],
    ['kernel running (uptime 0)', kernelAt],
    ['initrd /init starts', kernelAt + uptime(boot, /mosctl-boot: initrd start/)],
    ['partitions found, create-boot-fs starts', phase(/mosctl-boot: create-boot-fs \(/)],
    ['create-boot-fs done (hostfs mounted)', phase(/mosctl-boot: mounted hostfs/)],
    ['switch_root', kernelAt + uptime(boot, /mosctl-boot: switch_root/)],
    ['mosctl boot done (targets started)', phase(/mosctl\[\d+\]: generation \d+: \d+ of \d+ targets active/)],
    ['vmtest unit runs (multi-user)', phase(/VMTEST-BOOTED/)],
  ];
  const analyze = /Startup finished in .*/.exec(readFileSync(join(share, 'out.log'), 'utf8'))?.[0];

  // 3. create-boot-fs against the same mounts by shell, alternated in one guest (initrd hook).
  const store = await openLayout(join(sys.root, 'atomfs-store', 'mos'));
  const m = parseImageManifest(Buffer.from(await store.fetchBytes(await store.resolve(sys.hostfs['1.0'].digest))), 'hostfs');
  const layerLines: string[] = [];
  for (const l of m.layers) {
    const hex = l.digest.slice('sha256:'.length);
    const head = Buffer.alloc(96);
    const fd = openSync(join(sys.root, 'atomfs-store', 'mos', 'blobs', 'sha256', hex), 'r');
    readSync(fd, head, 0, 96, 0);
    closeSync(fd);
    layerLines.push(`${hex} ${verityHashOffset(parseSquashfsSuperblock(head, hex))} ${verityRootHashOf(l.annotations)}`);
  }
  writeFileSync(join(work, 'bench-layers'), `${layerLines.join('\n')}\n`);
  const benchInitrd = join(work, 'bench-initrd.img');
  await buildInitrd({
    modules: sys.kernel.modules, kver: sys.kernel.kver, ca: sys.ca, out: benchInitrd, extraModules: TEST_MODULES,
    add: [{ from: join(top, 'bench', 'boot', 'initrd-bench.sh'), to: '/etc/mosctl/initrd.d/50-bench.sh' }, { from: join(work, 'bench-layers'), to: '/etc/mosctl/bench-layers' }],
  });
  const disk2 = join(work, 'disk2.img');
  await copyDisk(sys.disk, disk2);
  const bench = await runVm(fakeTest, { kernel: sys.kernel.vmlinux, initrd: benchInitrd, append: `${sys.append} mos.bench=${RUNS}`, disks: [{ file: disk2 }], timeoutMs: 1_800_000, until: /BENCH done|FAILED/ });
  const times = new Map<string, number[]>();
  for (const l of bench.lines) {
    // Not anchored: the console is a terminal, so create-boot-fs's progress line (carriage returns,
    // erase-to-end) can precede a BENCH line on the same console line.
    const b = /BENCH (\S+) ([0-9.]+) ([0-9.]+)\s*$/.exec(l.text);
    if (b) times.set(b[1]!, [...(times.get(b[1]!) ?? []), Number(b[3]) - Number(b[2])]);
  }
  if (!times.has('shell')) throw new Error(`the bench guest failed:\n${bench.console.slice(-4000)}`);
  const cbf = median(times.get('create-boot-fs')!);
  const shell = median(times.get('shell')!);
  const nodeStart = median(times.get('node-start')!);
  const version = median(times.get('mosctl-version')!);

  console.log(`# bench/boot: QEMU ${execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]} -accel tcg, kernel ${sys.kernel.kver}, ${RUNS} runs each`);
  console.log('\n## one boot, host clock from QEMU start');
  console.log('| phase | at | step |');
  console.log('| --- | --- | --- |');
  rows.forEach(([name, t], i) => console.log(`| ${name} | ${s(t)} | ${i === 0 ? '' : s(t - rows[i - 1]![1])} |`));
  if (analyze) console.log(`\nsystemd-analyze in the guest: ${analyze}`);
  console.log('\n## create-boot-fs in the guest against a shell script doing the same mounts (median)');
  console.log('| what | time | ratio |');
  console.log('| --- | --- | --- |');
  console.log(`| shell script (veritysetup open, mount squashfs, mount overlay) | ${s(shell)} | 1.00 |`);
  console.log(`| mosctl create-boot-fs (markers present; verify signatures + config, mount) | ${s(cbf)} | ${(cbf / shell).toFixed(2)} |`);
  console.log(`| mosctl create-boot-fs, first boot (also sha256 of every layer) | ${s(times.get('create-boot-fs-first')![0]!)} | ${(times.get('create-boot-fs-first')![0]! / shell).toFixed(2)} |`);
  console.log(`| of which node start-up (\`node -e 0\`) | ${s(nodeStart)} | ${(nodeStart / shell).toFixed(2)} |`);
  console.log(`| of which mosctl start-up (\`mosctl --version\`) | ${s(version)} | ${(version / shell).toFixed(2)} |`);
  console.log('\n## bytes mosctl adds to an initramfs (zstd -10)');
  console.log(`| part | raw | compressed |`);
  console.log('| --- | --- | --- |');
  console.log(`| mosctl bundle (loader, mosctl.cjs, its V8 code cache, fs_ext.node) | ${(bundleRaw / 2 ** 20).toFixed(1)} MiB | ${(bundleZ / 2 ** 20).toFixed(2)} MiB |`);
  console.log(`| node binary | ${(nodeRaw / 2 ** 20).toFixed(1)} MiB | ${(nodeZ / 2 ** 20).toFixed(1)} MiB |`);
  console.log(`| whole test initramfs | | ${(initrdBytes / 2 ** 20).toFixed(1)} MiB |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
