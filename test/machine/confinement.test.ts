import { t } from 'tap';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { runCli } from '../support/cli.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { install } from '../../src/machine/index.js';

// Hostile input, finding 2: a directory under --root that is a symlink leading out of the root is
// refused, naming the symlink and where it leads, before anything is written or mounted there. The
// outside directory stays empty. A symlink that stays inside the root is followed as before.
const skip = needs({ root: true, programs: ['mksquashfs'] });

t.test('symlinks under --root that lead outside it are refused; ones that stay inside are fine', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-confine-work-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const pub = (name: string, v: string) => publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images, v), T.data(images)] }), repo: `oci:${join(work, 'pub')}`, name, pki });
  const v1 = await pub('machine/install:1', '1.0');
  const v2 = await pub('machine/install:2', '1.1');
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  await install({ root, source: v1.reference });
  const outside = mkdtempSync('/var/tmp/mosctl-outside-');
  t.teardown(() => rmSync(outside, { recursive: true, force: true }));

  /** Replaces `<root>/<rel>` by a symlink to `target` (its contents moved there); returns the undo. */
  const redirect = (rel: string, target: string) => {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    mkdirSync(target, { recursive: true });
    if (existsSync(p)) {
      cpSync(p, target, { recursive: true });
      rmSync(p, { recursive: true });
    }
    symlinkSync(target, p);
    return () => {
      rmSync(p);
      renameSync(target, p);
    };
  };

  const cases: [string, string[], RegExp][] = [
    ['scratch-writes', ['--root', root, 'create-boot-fs', '--dest', join(work, 'sysroot')], /create-boot-fs/],
    ['scratch-writes', ['--root', root, 'mount', '-t', 'data'], /mount/],
    ['mnt', ['--root', root, 'activate', '-t', 'data'], /activate/],
    ['mnt/atom/data', ['--root', root, 'activate', '-t', 'data'], /activate, per target/],
    ['scratch-writes/roots', ['--root', root, 'boot'], /boot/],
    ['config', ['--root', root, 'update', v2.reference], /update/],
  ];
  for (const [rel, argv, what] of cases) {
    const target = join(outside, rel.replaceAll('/', '_'));
    const undo = redirect(rel, target);
    const before = readdirSync(target).sort();
    const r = await runCli('mosctl', argv);
    t.not(r.code, 0, `${what.source} with ${rel} -> ${target}: refused`);
    t.match(r.stderr, new RegExp(`${join(root, rel).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a symlink to ${target}, outside the system root`), 'the error names the symlink and where it leads');
    t.same(readdirSync(target).sort(), before, 'nothing was written there');
    undo();
  }

  // A fresh root whose config/ leads elsewhere: install refuses before it writes anything.
  const fresh = makeSystemRoot(t);
  placeCa(fresh, pki);
  const away = join(outside, 'config-away');
  mkdirSync(away);
  symlinkSync(away, join(fresh, 'config'));
  const inst = await runCli('mosctl', ['--root', fresh, 'install', v1.reference]);
  t.equal(inst.code, 3, inst.stderr);
  t.match(inst.stderr, /config is a symlink to .*config-away, outside the system root/);
  t.same(readdirSync(away), [], 'install wrote nothing outside');
  t.notOk(existsSync(join(fresh, 'atomfs-store')), 'nor inside');

  // A symlink that stays inside the root is followed as before.
  const inside = join(root, 'var', 'mnt-real');
  const undo = redirect('mnt', inside);
  const ok = await runCli('mosctl', ['--root', root, 'activate', '-t', 'data']);
  t.equal(ok.code, 0, ok.stderr);
  t.ok(existsSync(join(inside, 'atom', 'data')), 'mounted through the inside symlink');
  const off = await runCli('mosctl', ['--root', root, 'deactivate', '-t', 'data']);
  t.equal(off.code, 0, off.stderr);
  undo();
});
