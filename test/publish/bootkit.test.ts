// A keyset's bootkit (`mosb keyset bootkit`) and the `bootkit` target `mosb manifest publish` adds from
// it: mos's layout (kernel.efi beside an OCI layout tagged bootkit-squashfs whose image holds
// bootkit/kernel.efi), reproducible, replaced whole; the target appended to a complete manifest signed
// with the keyset unless --skip-bootkit, the manifest names its own, it is partial, or the signer is a
// --cert/--key pair; a keyset without one publishes without it, or is refused with --require-bootkit.
import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STUB, buildUki, createBootkit, createKeyset, createProject, publish } from '../../src/build/index.js';
import type { InstallFile } from '../../src/manifest/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { buildImages, manifestYaml } from './fixture.js';

const skip = needs({ programs: ['mksquashfs', 'veritysetup', 'objcopy', 'unsquashfs'] }) || (existsSync(DEFAULT_STUB) ? false : `${DEFAULT_STUB} is missing (apt-get install systemd-boot-efi)`);

/** A real UKI (systemd's stub, objcopy) around a stand-in kernel: bootkits only carry the bytes. */
async function makeUki(dir: string, name: string, cmdline: string): Promise<string> {
  writeFileSync(join(dir, `${name}.kernel`), Buffer.concat([Buffer.from('MZ'), Buffer.alloc(8192, name)]));
  writeFileSync(join(dir, `${name}.initrd`), `initrd of ${name}\n`);
  const out = join(dir, `${name}.efi`);
  await buildUki({ kernel: join(dir, `${name}.kernel`), initrd: join(dir, `${name}.initrd`), cmdline, out });
  return out;
}

/** install.json of a publish to a layout, read from its blob (the sha256 publish reports). */
function installJson(layout: string, sha: string): InstallFile {
  return JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', sha), 'utf8')) as InstallFile;
}

t.test('mosb keyset bootkit, and the bootkit target publish adds from it', { skip }, async (t) => {
  const dir = t.testdir({});
  const dataHome = join(dir, 'xdg');
  const env = { XDG_DATA_HOME: dataHome };
  await createKeyset({ name: 'ks', dataHome });
  await createProject({ keyset: 'ks', project: 'p', dataHome });
  const keys = join(dataHome, 'machine', 'trust', 'keys', 'ks');
  const images = await buildImages(dir);
  const uki = await makeUki(dir, 'a', 'console=ttyS0 root=soci:name=mosboot,repo=local');
  const yamlFile = join(dir, 'manifest.yaml');
  writeFileSync(yamlFile, manifestYaml(images));
  let n = 0;
  const pub = (extra: Record<string, unknown> = {}) => {
    const repo = join(dir, `rel-${++n}`);
    return publish({ manifestFile: yamlFile, repo: `oci:${repo}`, name: 'machine/install:1.0', project: 'ks:p', dataHome, ...extra }).then((r) => ({ r, repo, json: installJson(repo, r.manifest) }));
  };

  await t.test('a keyset without a bootkit: nothing added, or refused with --require-bootkit', async (t) => {
    const { r, json } = await pub();
    t.same(r.added, [], 'nothing added');
    t.same(json.targets.map((x) => x.service_name), ['hostfs', 'data'], 'install.json lists the YAML targets only');
    const refused = join(dir, 'refused');
    await t.rejects(publish({ manifestFile: yamlFile, repo: `oci:${refused}`, name: 'machine/install:1.0', project: 'ks:p', dataHome, requireBootkit: true }), {
      code: 'NOT_FOUND', subject: 'keyset ks', message: 'has no bootkit', hint: /mosb keyset bootkit ks .*--skip-bootkit/,
    });
    t.notOk(existsSync(refused), 'a refused publish creates no layout');
    const cli = await runCli('mosb', ['manifest', 'publish', '--repo', `oci:${refused}`, '--name', 'machine/install:1.0', '--project', 'ks:p', '--require-bootkit', yamlFile], { env });
    t.equal(cli.code, 6, 'NOT_FOUND exit code');
    t.match(cli.stderr, /^mosb: keyset ks: has no bootkit\nhint: create it with: mosb keyset bootkit ks/m);
    t.notOk(existsSync(refused));
  });

  await t.test('bad input to mosb keyset bootkit: one error, the keyset unchanged', async (t) => {
    const before = readdirSync(keys).sort();
    writeFileSync(join(dir, 'not.efi'), 'just text\n');
    await t.rejects(createBootkit({ keyset: 'ks', uki: join(dir, 'not.efi'), dataHome }), { code: 'INPUT_INVALID', message: /is not a unified kernel image \(no MZ header\)/ });
    await t.rejects(createBootkit({ keyset: 'ks', uki: DEFAULT_STUB, dataHome }), { code: 'INPUT_INVALID', message: /without a \.linux section/ }, 'the bare stub is no UKI');
    await t.rejects(createBootkit({ keyset: 'ks', uki: join(dir, 'nope.efi'), dataHome }), { code: 'NOT_FOUND' });
    await t.rejects(createBootkit({ keyset: 'nokeyset', uki, dataHome }), { code: 'TRUST_KEYSET_UNKNOWN', hint: /mosb keyset add nokeyset/ });
    await t.rejects(createBootkit({ keyset: '../x', uki, dataHome }), { code: 'INPUT_INVALID', subject: 'keyset name "../x"' });
    t.same(readdirSync(keys).sort(), before, 'no bootkit, no temp dir');
    const cli = await runCli('mosb', ['keyset', 'bootkit', 'ks', join(dir, 'not.efi')], { env });
    t.equal(cli.code, 3);
    t.match(cli.stderr, /not\.efi: is not a unified kernel image/);
  });

  let digest = '';
  await t.test('the bootkit in mos\'s layout, reproducible', async (t) => {
    const cli = await runCli('mosb', ['--json', 'keyset', 'bootkit', 'ks', uki], { env });
    t.equal(cli.code, 0, cli.stderr);
    const r = cli.json as { dir: string; source: string; digest: string; replaced: boolean; uki: { bytes: number; sha256: string } };
    t.equal(r.dir, join(keys, 'bootkit'));
    t.equal(r.source, `oci:${join(keys, 'bootkit', 'oci')}:bootkit-squashfs`);
    t.equal(r.replaced, false);
    t.ok(readFileSync(join(keys, 'bootkit', 'kernel.efi')).equals(readFileSync(uki)), 'bootkit/kernel.efi is the UKI');
    // skopeo-independent read of the layout: index.json names the tag, the one layer is a squashfs with bootkit/kernel.efi.
    const index = JSON.parse(readFileSync(join(keys, 'bootkit', 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    const tagged = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'bootkit-squashfs');
    t.equal(tagged.length, 1, 'tagged bootkit-squashfs');
    t.equal(tagged[0]!.digest, r.digest);
    const blob = (d: string) => join(keys, 'bootkit', 'oci', 'blobs', 'sha256', d.slice('sha256:'.length));
    const m = JSON.parse(readFileSync(blob(r.digest), 'utf8')) as { layers: { digest: string }[] };
    t.equal(m.layers.length, 1);
    const out = join(dir, 'unsquashed');
    execFileSync('unsquashfs', ['-no-xattrs', '-d', out, blob(m.layers[0]!.digest)], { stdio: 'ignore' });
    t.ok(readFileSync(join(out, 'bootkit', 'kernel.efi')).equals(readFileSync(uki)), 'the image holds bootkit/kernel.efi, the UKI');
    const again = await createBootkit({ keyset: 'ks', uki, dataHome });
    t.equal(again.digest, r.digest, 'the same UKI gives the same image digest');
    t.equal(again.replaced, true, 'and replaces the bootkit');
    t.same(readdirSync(keys).filter((x) => x.startsWith('.')), [], 'no temp or old dir left');
    digest = r.digest;
  });

  await t.test('publish adds the bootkit target to a complete manifest', async (t) => {
    const { r, json } = await pub();
    t.same(r.added, ['bootkit']);
    t.same(json.targets.map((x) => x.service_name), ['hostfs', 'data', 'bootkit'], 'appended after the YAML targets');
    t.same(json.targets[2], { service_name: 'bootkit', version: '1.0.0', service_type: 'fs-only', network: { type: 'host', ipv4: '', ipv6: '', ports: null }, nsgroup: '', digest, storage: null, size: json.targets[2]!.size }, "mos's bootkit target, pinned to the keyset's image");
    const cli = await runCli('mosb', ['manifest', 'publish', '--repo', `oci:${join(dir, 'cli')}`, '--name', 'machine/install:1.0', '--project', 'ks:p', yamlFile], { env });
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, /added target bootkit from the keyset/);
    t.match(cli.stderr, /adding target bootkit from keyset ks/);
  });

  await t.test('and not with --skip-bootkit, a bootkit of its own, a partial manifest or a --cert/--key signer', async (t) => {
    t.same((await pub({ skipBootkit: true })).json.targets.map((x) => x.service_name), ['hostfs', 'data'], '--skip-bootkit');
    const own = manifestYaml(images).replace('  - service_name: data', '  - service_name: bootkit');
    writeFileSync(join(dir, 'own.yaml'), own);
    const mine = await publish({ manifestFile: join(dir, 'own.yaml'), repo: `oci:${join(dir, 'own')}`, name: 'm/i:1', project: 'ks:p', dataHome });
    t.same(mine.added, [], 'the manifest names its own bootkit');
    t.same(installJson(join(dir, 'own'), mine.manifest).targets.map((x) => [x.service_name, x.digest]), [['hostfs', images.hostfs.digest], ['bootkit', images.app.digest]], 'which is kept as written');
    writeFileSync(join(dir, 'partial.yaml'), manifestYaml(images).replace('update_type: complete', 'update_type: partial'));
    const partial = await publish({ manifestFile: join(dir, 'partial.yaml'), repo: `oci:${join(dir, 'partial')}`, name: 'm/i:1', project: 'ks:p', dataHome });
    t.same(partial.added, [], 'a partial manifest names only what it changes');
    const pki = await mintPki(t);
    const files = await publish({ manifestFile: yamlFile, repo: `oci:${join(dir, 'files')}`, name: 'm/i:1', cert: pki.chainPem, key: pki.leafKey, dataHome });
    t.same(files.added, [], 'a --cert/--key signer has no keyset');
    await t.rejects(publish({ manifestFile: yamlFile, repo: `oci:${join(dir, 'x')}`, name: 'm/i:1', cert: pki.chainPem, key: pki.leafKey, requireBootkit: true }), { code: 'USAGE', subject: '--require-bootkit', message: /needs --project/ });
    await t.rejects(pub({ skipBootkit: true, requireBootkit: true }), { code: 'USAGE', subject: '--require-bootkit', message: /does not go with --skip-bootkit/ });
  });
});
