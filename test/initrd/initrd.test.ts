// `mosb initrd build` and `mosb initrd bundle` on the host: the archive is a newc cpio that GNU cpio and
// busybox read back, reproducible byte for byte, the module set matches modprobe's own resolution of
// the same tree, the bundle runs, and bad input is refused with nothing written.
import { t } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildInitrd, INITRD_MODULES } from '../../src/build/index.js';
import { resolveModules } from '../../src/build/kernel-modules.js';
import { writeCpio } from '../../src/build/cpio.js';
import { createKeyset, keysetPaths } from '../../src/build/index.js';
import { cliPath, runCli } from '../support/cli.js';
import { hasProgram, needs } from '../support/env.js';
import { guestKernel } from '../support/vm.js';

const kernelSkip = needs({ programs: ['apt-get', 'dpkg-deb', 'depmod', 'modprobe', 'xz', 'zstd', 'cpio', 'busybox'] });

t.test('the cpio writer makes what GNU cpio and busybox cpio read back', { skip: needs({ programs: ['cpio', 'busybox'] }) }, async (t) => {
  const dir = t.testdir({});
  const archive = writeCpio([
    { path: 'bin', kind: 'dir', mode: 0o755 },
    { path: 'bin/hello', kind: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
    { path: 'etc', kind: 'dir', mode: 0o755 },
    { path: 'etc/odd', kind: 'file', mode: 0o600, data: Buffer.from('x'.repeat(4097)) },
    { path: 'sh', kind: 'symlink', target: 'bin/hello' },
    { path: 'dev', kind: 'dir', mode: 0o755 },
    { path: 'dev/null', kind: 'char', mode: 0o666, major: 1, minor: 3 },
  ], { mtime: 1234567890 });
  writeFileSync(join(dir, 'a.cpio'), archive);
  const list = execFileSync('cpio', ['-t', '-v', '--quiet', '-F', join(dir, 'a.cpio')], { encoding: 'utf8' });
  t.match(list, /-rwxr-xr-x .* root +root .* bin\/hello/, 'GNU cpio lists a root-owned executable');
  t.match(list, /crw-rw-rw- .* 1, +3 .* dev\/null/, 'and the device node');
  t.match(list, /lrwxrwxrwx .* sh -> bin\/hello/, 'and the symlink');
  const out = join(dir, 'x');
  mkdirSync(out);
  execFileSync('sh', ['-c', `cd '${out}' && busybox cpio -i -d < '${join(dir, 'a.cpio')}'`]);
  t.equal(readFileSync(join(out, 'etc/odd'), 'utf8'), 'x'.repeat(4097), 'busybox cpio extracts the bytes');
  t.throws(() => writeCpio([{ path: '../x', kind: 'dir', mode: 0o755 }]), /bad member path/, 'no path escapes the archive');
  t.throws(() => writeCpio([{ path: 'a', kind: 'dir', mode: 0o755 }, { path: 'a', kind: 'dir', mode: 0o755 }]), /twice/, 'no member twice');
});

t.test("module resolution matches modprobe's for the same tree", { skip: kernelSkip }, async (t) => {
  const k = await guestKernel();
  const ours = await resolveModules(k.modules, k.kver, INITRD_MODULES);
  const theirs = new Set<string>();
  for (const m of INITRD_MODULES) {
    const out = execFileSync('modprobe', ['-d', k.modules, '-S', k.kver, '--show-depends', '--ignore-install', m], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const p = /^insmod (\S+)/.exec(line)?.[1];
      if (p) theirs.add(p.split(`/lib/modules/${k.kver}/`)[1]!);
    }
  }
  const mine = new Set(ours.modules.map((m) => m.rel));
  t.same([...theirs].filter((p) => !mine.has(p)).sort(), [], 'every module modprobe would load is in the initramfs');
  t.same([...mine].filter((p) => !theirs.has(p)).sort(), [], 'and nothing else');
  // Load order: every module after all of its dependencies.
  const index = new Map(ours.modules.map((m, i) => [m.rel, i]));
  for (const m of ours.modules) {
    const deps = execFileSync('modprobe', ['-d', k.modules, '-S', k.kver, '--show-depends', '--ignore-install', m.name], { encoding: 'utf8' })
      .split('\n').map((l) => /^insmod (\S+)/.exec(l)?.[1]?.split(`/lib/modules/${k.kver}/`)[1]).filter((p): p is string => p !== undefined && p !== m.rel);
    for (const d of deps) if (index.has(d)) t.ok(index.get(d)! < index.get(m.rel)!, `${d} loads before ${m.rel}`, { diag: false });
  }
  await t.rejects(resolveModules(k.modules, k.kver, ['no_such_module_x']), { code: 'INPUT_INVALID', message: /has no such module/ });
});

t.test('mosb initrd build: reproducible, complete, and refuses bad input writing nothing', { skip: kernelSkip || needs({ programs: ['node'] }) }, async (t) => {
  const dir = t.testdir({});
  const k = await guestKernel();
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'ird', dataHome });
  const ca = keysetPaths({ keyset: 'ird', dataHome }).caCert;
  const a = await buildInitrd({ modules: k.modules, ca, out: join(dir, 'a.img'), compression: 'none' });
  const b = await buildInitrd({ modules: k.modules, ca, out: join(dir, 'b.img'), compression: 'none' });
  t.equal(a.sha256, b.sha256, 'the same inputs give the same bytes');
  t.equal(a.kver, k.kver, 'the only kernel of the tree is taken');
  const list = execFileSync('cpio', ['-t', '--quiet', '-F', join(dir, 'a.img')], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).split('\n');
  for (const f of ['init', 'manifestCA.pem', 'usr/bin/node', 'usr/sbin/veritysetup', 'usr/lib/mosctl/mosctl.mjs', 'usr/lib/mosctl/node_modules/fs-ext/build/Release/fs_ext.node', 'usr/lib/mosctl/mosctl-lib.sh', 'bin/busybox', 'bin/sh', 'sbin/switch_root', 'etc/mosctl/modules.load']) {
    t.ok(list.includes(f), `${f} is in the archive`);
  }
  t.ok(list.some((l) => l.endsWith('/dm-verity.ko')), 'dm-verity is in the archive');
  t.equal(list.filter((l) => l.startsWith('lib/x86_64-linux-gnu/libc.so')).length, 1, "node's libc comes along");
  const x = join(dir, 'x');
  mkdirSync(x);
  execFileSync('sh', ['-c', `cd '${x}' && cpio -i -d --quiet < '${join(dir, 'a.img')}'`], { maxBuffer: 64 * 1024 * 1024 });
  t.equal(readFileSync(join(x, 'manifestCA.pem'), 'utf8'), readFileSync(ca, 'utf8'), 'the manifest CA is /manifestCA.pem');
  t.match(execFileSync(join(x, 'usr/bin/node'), [join(x, 'usr/lib/mosctl/mosctl.mjs'), '--version'], { encoding: 'utf8' }), /^\d+\.\d+\.\d+/, 'the bundle in it runs and knows its version');

  // Bad input: one error each, exit non-zero, no output file.
  const notCa = join(dir, 'leaf.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', notCa, '-subj', '/CN=leaf', '-days', '1', '-addext', 'basicConstraints=critical,CA:FALSE'], { stdio: 'ignore' });
  const cases: [string, string[], RegExp, number][] = [
    ['no CA', ['--modules', k.modules], /--ca FILE or --keyset NAME/, 2],
    ['a CA file that is no certificate', ['--modules', k.modules, '--ca', '/etc/hostname'], /holds no PEM certificate/, 3],
    ['a leaf certificate as CA', ['--modules', k.modules, '--ca', notCa], /is not a CA certificate/, 4],
    ['/dev/zero as CA', ['--modules', k.modules, '--ca', '/dev/zero'], /not a regular file/, 3],
    ['/dev/zero as node', ['--modules', k.modules, '--ca', ca, '--node', '/dev/zero'], /\/dev\/zero: is not a regular file \(a character device\)/, 3],
    ['/dev/zero as an --add file', ['--modules', k.modules, '--ca', ca, '--add', '/dev/zero:/etc/x'], /\/dev\/zero: is not a regular file/, 3],
    ['a missing --add file', ['--modules', k.modules, '--ca', ca, '--add', `${dir}/nonexistent:/etc/x`], /nonexistent: does not exist/, 6],
    ['a module the kernel lacks', ['--modules', k.modules, '--ca', ca, '--module', 'nonexistent_mod'], /no such module/, 3],
    ['not a module tree', ['--modules', dir, '--ca', ca], /holds no kernel module tree/, 2],
    ['a relative --add destination', ['--modules', k.modules, '--ca', ca, '--add', `${ca}:etc/x`], /SRC:\/ABSOLUTE\/DEST/, 2],
    ['an --add over a shipped file', ['--modules', k.modules, '--ca', ca, '--add', `${ca}:/init`], /already part of the initramfs/, 2],
    ['an unknown compression', ['--modules', k.modules, '--ca', ca, '--compression', 'lz4'], /not zstd, gzip or none/, 2],
  ];
  for (const [what, args, re, code] of cases) {
    const out = join(dir, `bad-${what.replace(/\W+/g, '-')}.img`);
    const r = await runCli('mosb', ['initrd', 'build', ...args, out]);
    t.equal(r.code, code, `${what}: exit ${code}`, { diag: r.stderr });
    t.match(r.stderr, re, `${what}: says so`);
    t.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('mosb:')).length, 1, `${what}: one error line`);
    t.notOk(existsSync(out), `${what}: nothing written`);
  }
  t.ok(existsSync(cliPath('mosb')), 'the CLI is built');
});

t.test('mosb initrd bundle: one ES module plus the flock addon, which runs from anywhere', { skip: !hasProgram('node') && 'needs node' }, async (t) => {
  const dir = t.testdir({});
  const r = await runCli('mosb', ['--json', 'initrd', 'bundle', join(dir, 'b')]);
  t.equal(r.code, 0, 'built', { diag: r.stderr });
  const v = execFileSync(process.execPath, [join(dir, 'b', 'mosctl.mjs'), '--version'], { encoding: 'utf8', cwd: '/' }).trim();
  t.equal(v, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version, '--version is the package version');
  const st = spawnSync(process.execPath, [join(dir, 'b', 'mosctl.mjs'), '--root', dir, 'status'], { encoding: 'utf8', cwd: '/' });
  t.equal(st.status, 6, 'a command runs: status on an empty root says nothing is installed');
  t.match(st.stderr, /no system is installed here/);
  t.same(readdirSync(join(dir, 'b')).sort(), ['downloader.cjs', 'downloader.cjs.cache', 'mosctl.cjs', 'mosctl.cjs.cache', 'mosctl.mjs', 'node_modules'], 'the bundle and the downloader child\'s, their code caches, the loader and the addon directory');
  t.match(execFileSync(process.execPath, ['-e', `const fs=require('fs'),{Module}=require('module'),{Script}=require('vm');const f=${JSON.stringify(join(dir, 'b', 'mosctl.cjs'))};console.log(new Script(Module.wrap(fs.readFileSync(f,'utf8').replace(/^#!.*/,'')),{filename:f,cachedData:fs.readFileSync(f+'.cache')}).cachedDataRejected)`], { encoding: 'utf8' }), /^false/, 'this node accepts the code cache');
  const again = await runCli('mosb', ['--json', 'initrd', 'bundle', join(dir, 'c')]);
  t.equal(again.code, 0);
  for (const f of ['mosctl.cjs', 'mosctl.cjs.cache', 'downloader.cjs', 'downloader.cjs.cache', 'mosctl.mjs']) t.same(readFileSync(join(dir, 'c', f)), readFileSync(join(dir, 'b', f)), `${f}: the same bytes on a second build`);
});
