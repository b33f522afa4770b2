// `mosb uki build` and `mosb mkboot` on the host: the UKI's sections hold exactly the kernel, initrd and
// command line (read back with objcopy), it is reproducible byte for byte, sbsign's signature verifies
// with sbverify against an openssl-made certificate; the ISO is UEFI-bootable per xorriso's own report,
// labelled OCI-BOOT, and a loop-mounted copy installs with mosctl; bad input writes nothing.
import { t } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STUB, buildUki, mkboot } from '../../src/build/index.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';
import { guestKernel } from '../support/vm.js';
import { issueLeaf, signEnvelope } from '../../src/trust/index.js';

const ukiSkip = needs({ programs: ['objcopy', 'apt-get', 'dpkg-deb', 'depmod', 'xz', 'zstd'] }) || (existsSync(DEFAULT_STUB) ? false : `${DEFAULT_STUB} is missing (apt-get install systemd-boot-efi)`);
const isoSkip = ukiSkip || needs({ root: true, programs: ['xorriso', 'mkfs.vfat', 'mcopy', 'mmd', 'mksquashfs'] });

const section = (file: string, name: string, out: string) => {
  execFileSync('objcopy', ['-O', 'binary', `--only-section=${name}`, file, out]);
  return readFileSync(out);
};

t.test('a UKI holds the kernel, initrd and command line, is reproducible, and signs', { skip: ukiSkip }, async (t) => {
  const k = await guestKernel();
  const dir = t.testdir({ 'initrd.img': 'not really an initramfs, but bytes to carry\n'.repeat(1000) });
  const initrd = join(dir, 'initrd.img');
  const cmdline = 'console=ttyS0 root=soci:name=live-1.0,dev=LABEL=OCI-BOOT';
  const a = await buildUki({ kernel: k.vmlinuz, initrd, cmdline, out: join(dir, 'a.efi') });
  const b = await buildUki({ kernel: k.vmlinuz, initrd, cmdline, out: join(dir, 'b.efi') });
  t.equal(a.sha256, b.sha256, 'two builds are byte-identical');
  t.ok(readFileSync(join(dir, 'a.efi')).equals(readFileSync(join(dir, 'b.efi'))), 'and the files agree');
  t.equal(section(join(dir, 'a.efi'), '.cmdline', join(dir, 'c')).toString(), cmdline, '.cmdline is the command line');
  t.ok(section(join(dir, 'a.efi'), '.linux', join(dir, 'l')).equals(readFileSync(k.vmlinuz)), '.linux is the kernel, whole');
  t.ok(section(join(dir, 'a.efi'), '.initrd', join(dir, 'i')).equals(readFileSync(initrd)), '.initrd is the initramfs, whole');
  const heads = execFileSync('objdump', ['-h', join(dir, 'a.efi')], { encoding: 'utf8' });
  const vmas = [...heads.matchAll(/^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)/gm)].map((m) => ({ name: m[1]!, size: parseInt(m[2]!, 16), vma: parseInt(m[3]!, 16) }));
  vmas.sort((x, y) => x.vma - y.vma);
  for (let i = 1; i < vmas.length; i++) t.ok(vmas[i - 1]!.vma + vmas[i - 1]!.size <= vmas[i]!.vma, `${vmas[i - 1]!.name} ends before ${vmas[i]!.name} starts`);
  t.same(vmas.slice(-4).map((v) => v.name), ['.osrel', '.cmdline', '.linux', '.initrd'], 'the four sections follow the stub');

  // Signed: sbverify (an independent reader) accepts it against the signing certificate, not another.
  if (needs({ programs: ['sbsign', 'sbverify', 'openssl'] }) === false) {
    const mk = (n: string) => execFileSync('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${n}`, '-days', '30', '-keyout', join(dir, `${n}.key`), '-out', join(dir, `${n}.crt`)], { stdio: 'ignore' });
    mk('db');
    mk('other');
    const s = await buildUki({ kernel: k.vmlinuz, initrd, cmdline, out: join(dir, 's.efi'), sign: { key: join(dir, 'db.key'), cert: join(dir, 'db.crt') } });
    t.ok(s.signed, 'reported signed');
    t.equal(spawnSync('sbverify', ['--cert', join(dir, 'db.crt'), join(dir, 's.efi')]).status, 0, 'sbverify accepts it with the db certificate');
    t.not(spawnSync('sbverify', ['--cert', join(dir, 'other.crt'), join(dir, 's.efi')]).status, 0, 'and refuses it with another');
    t.not(spawnSync('sbverify', ['--cert', join(dir, 'db.crt'), join(dir, 'a.efi')]).status, 0, 'the unsigned one has no signature');
  }

  // Bad input: one error, nothing written.
  const out = join(dir, 'bad.efi');
  await t.rejects(buildUki({ kernel: join(dir, 'nope'), initrd, cmdline, out }), { code: 'NOT_FOUND', subject: /^kernel .*nope$/, message: 'does not exist' });
  await t.rejects(buildUki({ kernel: k.vmlinux, initrd, cmdline, out }), { code: 'INPUT_INVALID', message: /not an EFI-stub kernel/ }, 'the ELF vmlinux is refused');
  await t.rejects(buildUki({ kernel: k.vmlinuz, initrd, cmdline: 'a\nb', out }), { code: 'INPUT_INVALID', subject: 'command line', message: /newline/ });
  await t.rejects(buildUki({ kernel: k.vmlinuz, initrd, cmdline: '  ', out }), { code: 'INPUT_INVALID', message: /empty/ });
  await t.rejects(buildUki({ kernel: k.vmlinuz, initrd, cmdline, out, stub: join(dir, 'a.efi') }), { code: 'INPUT_INVALID', message: /already has a \.osrel section/ }, 'a UKI is not a stub');
  await t.rejects(buildUki({ kernel: k.vmlinuz, initrd, cmdline, out, stub: initrd }), { code: 'INPUT_INVALID', message: /no MZ header/ });
  t.notOk(existsSync(out), 'no refused build wrote anything');

  // The CLI: flags parsed, result printed, a half-given signing pair refused.
  const cli = await runCli('mosb', ['uki', 'build', '--kernel', k.vmlinuz, '--initrd', initrd, '--cmdline', cmdline, join(dir, 'cli.efi')]);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /cli\.efi: [\d.]+ MiB UKI, sha256 [0-9a-f]{64}/);
  t.ok(readFileSync(join(dir, 'cli.efi')).equals(readFileSync(join(dir, 'a.efi'))), 'the CLI builds the same bytes');
  const half = await runCli('mosb', ['uki', 'build', '--kernel', k.vmlinuz, '--initrd', initrd, '--cmdline', cmdline, '--sign-key', join(dir, 'db.key'), join(dir, 'half.efi')]);
  t.equal(half.code, 2, 'usage error');
  t.match(half.stderr, /needs both --sign-key and --sign-cert/);
  t.notOk(existsSync(join(dir, 'half.efi')));
});

t.test('mkboot: a UEFI ISO labelled OCI-BOOT carrying verified releases that install from it', { skip: isoSkip }, async (t) => {
  const k = await guestKernel();
  const dir = t.testdir({ 'initrd.img': 'initrd bytes\n' });
  const pki = await mintPki(t);
  const images = await buildImages(dir);
  const repo = `oci:${join(dir, 'rel')}`;
  await publishYaml({ dir, repo, name: 'machine/livecd:live-1', pki, yaml: manifestYaml({ targets: [T.hostfs(images).replace('service_name: hostfs', 'service_name: livecd').replace('service_type: hostfs', 'service_type: fs-only').replace('network: {type: host}', 'network: {type: none}')] }) });
  await publishYaml({ dir, repo, name: 'machine/install:1.0', pki, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }) });
  const iso = join(dir, 'boot.iso');
  const r = await mkboot({ live: `${repo}:live-1`, install: [`${repo}:1.0`], ca: pki.caCert, kernel: k.vmlinuz, initrd: join(dir, 'initrd.img'), cmdline: 'console=ttyS0', out: iso });
  t.same(r.tags, ['live-1', '1.0']);
  t.equal(r.images, 2, 'hostfs (shared by both) and data, each once');
  t.equal(r.cmdline, 'root=soci:name=live-1,dev=LABEL=OCI-BOOT console=ttyS0', 'the UKI names the live manifest and the medium');

  const el = execFileSync('xorriso', ['-indev', iso, '-report_el_torito', 'plain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.match(el, /El Torito boot img :\s+1\s+UEFI\s+y/, 'xorriso reports a UEFI El Torito image');
  const pvd = execFileSync('xorriso', ['-indev', iso, '-pvd_info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.match(pvd, /Volume Id\s+:\s+OCI-BOOT/, 'volume label OCI-BOOT');
  const gpt = execFileSync('sfdisk', ['--dump', iso], { encoding: 'utf8' });
  t.match(gpt, /type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B/i, 'hybrid: a GPT with the EFI system partition for USB sticks');
  const start = Number(/start=\s*(\d+),[^\n]*type=C12A7328/i.exec(gpt)?.[1]);
  const listing = execFileSync('mdir', ['-i', `${iso}@@${start * 512}`, '-b', '::/EFI/BOOT'], { encoding: 'utf8' });
  t.match(listing, /BOOTX64\.EFI/i, 'the ESP image boots EFI/BOOT/BOOTX64.EFI');

  // Installing from the medium's files, read back by xorriso (the host kernel here has no iso9660; the
  // VM test mounts the medium in the guest).
  const mnt = join(dir, 'medium');
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/oci', join(mnt, 'oci')], { stdio: 'ignore' });
  const root = makeSystemRoot(t);
  placeCa(root, pki);
  const inst = await runCli('mosctl', ['--root', root, 'install', `oci:${mnt}/oci:1.0`]);
  t.equal(inst.code, 0, `install from the ISO: ${inst.stderr}`);
  const fsck = await runCli('mosctl', ['--root', root, 'fsck']);
  t.equal(fsck.code, 0, `fsck of the installed store: ${fsck.stderr}${fsck.stdout}`);

  // A site bundle rides along as /site-bundle.json, verified against the CA first; a foreign one is refused.
  const siteKey = await issueLeaf({ name: 'CN=site alpha', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), caCertPem: readFileSync(pki.caCert, 'utf8'), caKeyPem: readFileSync(pki.caKey, 'utf8'), site: true });
  const bundleOf = (key: { certPem: string; keyPem: string }, file: string) => {
    const payload = Buffer.from(JSON.stringify({ apiVersion: 'mosctl/v1', kind: 'SiteBundle', site: 'alpha', version: 4, created: new Date().toISOString(), caCertificates: [], env: { SITE: 'alpha' } }));
    writeFileSync(join(dir, file), JSON.stringify(signEnvelope('application/vnd.mosctl.site-bundle.v1+json', payload, [key])));
    return join(dir, file);
  };
  const withSite = join(dir, 'site.iso');
  const rs = await mkboot({ live: `${repo}:live-1`, ca: pki.caCert, kernel: k.vmlinuz, initrd: join(dir, 'initrd.img'), siteBundle: bundleOf(siteKey, 'alpha.json'), out: withSite });
  t.same(rs.siteBundle, { site: 'alpha', version: 4 });
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', withSite, '-extract', '/site-bundle.json', join(dir, 'extracted.json')], { stdio: 'ignore' });
  t.equal(readFileSync(join(dir, 'extracted.json'), 'utf8'), readFileSync(join(dir, 'alpha.json'), 'utf8'), 'the medium carries the bundle as site-bundle.json');

  // Refusals, nothing written: a foreign CA, a live manifest without livecd, no kernel, a foreign site bundle.
  const foreignSite = await issueLeaf({ name: 'CN=site x', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), ...(await (async () => { const o = await mintPki(t, { keySalt: 'site-foreign', caCn: 'other site CA' }); return { caCertPem: readFileSync(o.caCert, 'utf8'), caKeyPem: readFileSync(o.caKey, 'utf8') }; })()), site: true });
  await t.rejects(mkboot({ live: `${repo}:live-1`, ca: pki.caCert, kernel: k.vmlinuz, initrd: join(dir, 'initrd.img'), siteBundle: bundleOf(foreignSite, 'foreign-site.json'), out: join(dir, 'bad-site.iso') }), { code: 'TRUST_SIGNATURE_INVALID', message: /no signature verifies as a site bundle/ });
  t.notOk(existsSync(join(dir, 'bad-site.iso')), 'no ISO for a bundle the CA did not vouch for');
  const other = await mintPki(t, { keySalt: 'foreign', caCn: 'foreign CA' });
  const bad = join(dir, 'bad.iso');
  await t.rejects(mkboot({ live: `${repo}:live-1`, ca: other.caCert, kernel: k.vmlinuz, initrd: join(dir, 'initrd.img'), out: bad }), { code: /^TRUST_/ }, 'a manifest the CA did not sign');
  await t.rejects(mkboot({ live: `${repo}:1.0`, ca: pki.caCert, kernel: k.vmlinuz, initrd: join(dir, 'initrd.img'), out: bad }), { code: 'SYSTEM_TARGET_UNKNOWN', subject: /target livecd$/ }, 'a live manifest without a livecd target');
  await t.rejects(mkboot({ live: `${repo}:live-1`, ca: pki.caCert, out: bad }), { code: 'USAGE' });
  const cli = await runCli('mosb', ['mkboot', '--ca', other.caCert, '--kernel', k.vmlinuz, '--initrd', join(dir, 'initrd.img'), `${repo}:live-1`, bad]);
  t.not(cli.code, 0, 'the CLI fails');
  t.match(cli.stderr, /^mosb: oci:.*rel:live-1: signer certificate: .*does not chain to a trusted manifest CA/m, 'naming the manifest and what failed');
  t.notOk(existsSync(bad), 'no ISO written by a refused build');
  t.same(readdirSync(dir).filter((n) => n.startsWith('.mkboot-')), [], 'and no work directory left');
});
