// The initrd refuses what does not verify, with one line on the console, and never switch_roots into
// it: a layer changed on the store partition between boots, an install manifest committed without a
// valid signature, and a correctly signed manifest whose image names the wrong verity root hash (the
// dm-verity device opens, but mosctl probes it before use).
import { t, type Test } from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { publish, projectPaths } from '../../src/build/index.js';
import { copy, openLayout } from '../../src/oci/index.js';
import { VERITY_ROOT_HASH_ANNOTATION } from '../../src/squashfs/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { copyDisk, makeGptDisk, runVm, VM_PROGRAMS, type VmRun } from '../support/vm.js';
import { pokeFile, PRODUCT, vmSystem, type VmSystem } from '../support/vm-system.js';

const execFileP = promisify(execFile);
const skip = needs({ root: true, programs: [...VM_PROGRAMS, 'git'] });
t.setTimeout(30 * 60_000);

/** An initrd-only boot: stops at switch_root or at the initrd's refusal. */
async function initrdBoot(tt: Test, sys: VmSystem, disk: string): Promise<VmRun> {
  return runVm(tt, { kernel: sys.kernel.vmlinux, initrd: sys.initrd, append: sys.append, disks: [{ file: disk }], timeoutMs: 240_000, until: /switch_root uptime|mosctl-boot: FAILED.*\n/ });
}

/** Runs `fn` with partition `label` of `disk` loop-mounted on the host (unmounted after, also on failure). */
async function onPartition(tt: Test, sys: VmSystem, disk: string, label: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = join(tt.testdirName, `mnt-${label}-${randomBytes(3).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  await execFileP('mount', ['-o', `loop,offset=${sys.offsets[label]}`, disk, dir]);
  try {
    await fn(dir);
  } finally {
    await execFileP('umount', [dir]);
  }
}

const failedLine = (run: VmRun) => run.console.split('\n').find((l) => l.includes('mosctl-boot: FAILED')) ?? '(no FAILED line)';

t.test('a layer changed on the store partition between boots is refused', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const disk = join(t.testdir({}), 'disk.img');
  await copyDisk(sys.disk, disk);
  const first = await initrdBoot(t, sys, disk);
  t.match(first.console, /switch_root uptime/, 'the untouched disk boots (and leaves verified markers)', { diag: first.console.slice(-6000) });

  const hex = sys.hostfs['1.0'].topLayer.slice('sha256:'.length);
  await onPartition(t, sys, disk, 'machine-store', async (dir) => {
    await pokeFile(join(dir, 'mos/blobs/sha256', hex), 4096 + 77, Buffer.from([0x5a]));
  });
  const run = await initrdBoot(t, sys, disk);
  const line = failedLine(run);
  t.match(line, `mosctl-boot: FAILED: generation 1: layer ${sys.hostfs['1.0'].topLayer}: blob content does not hash to its digest`, 'one line names the generation, the layer and what is wrong', { diag: run.console.slice(-6000) });
  t.notMatch(run.console, /switch_root uptime/, 'no switch_root');
  t.comment(`boots: ${(first.durationMs / 1000).toFixed(1)} s, ${(run.durationMs / 1000).toFixed(1)} s`);
});

t.test('an install manifest committed without a valid signature is refused, and the boot falls back to the good generation', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const disk = join(t.testdir({}), 'disk.img');
  await copyDisk(sys.disk, disk);
  await onPartition(t, sys, disk, 'machine-config', async (dir) => {
    const repo = join(dir, 'manifest.git');
    const sig = (await readdir(repo)).find((n) => n.endsWith('.json.signed'))!;
    const bytes = await readFile(join(repo, sig));
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(join(repo, sig), bytes);
    const git = (...a: string[]) => execFileP('git', ['-C', repo, '-c', 'user.name=attacker', '-c', 'user.email=a@example.invalid', ...a]);
    await git('add', '-A');
    await git('commit', '-q', '-m', 'forged signature');
  });
  const run = await initrdBoot(t, sys, disk);
  // The forged commit is a new generation, so a trial (boot assessment): refused, it fails at once and
  // this same boot assembles the good generation again (as generation 3) instead of halting the machine.
  t.match(run.console, /mosctl-boot: generation 2 failed \(create-boot-fs: generation 2: [0-9a-f]{64}\.json: signature does not match [0-9a-f]{64}\.json\): fell back to generation 1 as generation 3/, 'one line says the signature does not verify, and the boot falls back', { diag: run.console.slice(-6000) });
  t.match(run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.0'].digest}) of generation 3 `, 'the good generation is assembled');
  t.notMatch(run.console, /mosctl-boot: FAILED/, 'the machine boots');
});

t.test('a signed manifest whose image names the wrong verity root hash is refused before use', { skip }, async (t) => {
  const sys = await vmSystem((s) => t.comment(s));
  const dir = t.testdir({});
  // Forge hostfs-1.0's image manifest: the top layer's root hash annotation changed (bytes intact).
  const images = await openLayout(sys.images);
  const desc = await images.resolve('hostfs-1.0');
  const manifest = JSON.parse(Buffer.from(await images.fetchBytes(desc)).toString('utf8')) as { layers: { annotations?: Record<string, string> }[] };
  const top = manifest.layers.at(-1)!;
  const real = top.annotations![VERITY_ROOT_HASH_ANNOTATION]!;
  top.annotations![VERITY_ROOT_HASH_ANNOTATION] = real.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  const bytes = Buffer.from(JSON.stringify(manifest));

  const forged = { mediaType: desc.mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as const, size: bytes.length };
  const layout = join(dir, 'forged');
  const store = await openLayout(layout, { create: true });
  await copy({ src: images, dst: store, reference: desc, tag: 'real' });
  await store.pushManifest(forged, bytes, { tag: 'hostfs-forged' });
  const yaml = join(dir, 'forged.yaml');
  await writeFile(yaml, [
    'version: 1', `product: ${PRODUCT}`, 'update_type: complete', 'targets:',
    `  - {service_name: hostfs, source: "oci:${layout}:hostfs-forged", version: "1.0.0", service_type: hostfs, network: {type: host}}`, '',
  ].join('\n'));
  const project = projectPaths({ keyset: 'vm', project: 'rel', dataHome: sys.xdg });
  await publish({ manifestFile: yaml, repo: `oci:${join(dir, 'rel')}`, name: 'machine/install:forged', cert: project.cert, key: project.key });
  const root = join(dir, 'root');
  await mkdir(join(root, 'factory', 'secure'), { recursive: true });
  await writeFile(join(root, 'factory', 'secure', 'manifestCA.pem'), await readFile(sys.ca));
  const inst = await runCli('mosctl', ['--root', root, 'install', `oci:${join(dir, 'rel')}:forged`]);
  t.equal(inst.code, 0, 'the host installs it (the signature is good; verity is checked where it is mounted)', { diag: inst.stderr });
  const disk = join(dir, 'disk.img');
  await makeGptDisk(disk, [
    { label: 'machine-config', sizeMiB: 32, from: join(root, 'config') },
    { label: 'machine-store', sizeMiB: 640, from: join(root, 'atomfs-store') },
    { label: 'machine-scratch', sizeMiB: 64 },
  ]);
  const run = await initrdBoot(t, sys, disk);
  t.match(failedLine(run), new RegExp(`mosctl-boot: FAILED: generation 1: .*does not match its verity root hash`), 'one line: the layer does not match its root hash', { diag: run.console.slice(-6000) });
  t.notMatch(run.console, /switch_root uptime/, 'no switch_root');
});
