// Secure Boot with the keyset's own keys. On the host: `mosb keyset uefi` makes uefi-{pk,kek,db}
// (cert.pem, privkey.pem, guid) and an OVMF variables file with them enrolled; the variables are read
// back, their signature lists are byte for byte what efitools' cert-to-efi-sig-list makes. In OVMF's
// Secure Boot build (TCG), one boot with three disks, each a GPT with an ESP holding one UKI as
// EFI/BOOT/BOOTX64.EFI, tried in this order: the UKI unsigned, the UKI signed by a foreign keyset's db
// key, the UKI signed by the keyset's db key. The firmware refuses the first two (Access Denied) and
// starts the third: the kernel reports Secure Boot, the initrd reads SecureBoot=1 from the firmware.
// The kernel inside the UKI is Debian's as packaged (not re-signed): systemd-stub 252 needs no more.
import { t } from 'tap';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_STUB, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, buildUki, createKeyset, createUefiKeys, readVarStore, uefiKeyPaths, writeOvmfVars, type StoredVariable } from '../../src/build/index.js';
import { writeCpio, type CpioEntry } from '../../src/build/cpio.js';
import { runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { OVMF_CODE_SECBOOT, OVMF_VARS, guestKernel, makeGptDisk, runVm, type VmRun } from '../support/vm.js';

const execFileP = promisify(execFile);
const MS_VARS = '/usr/share/OVMF/OVMF_VARS_4M.ms.fd';
const hostSkip = existsSync(OVMF_VARS) ? false : `${OVMF_VARS} is missing (apt-get install ovmf)`;
const missing = [DEFAULT_STUB, OVMF_VARS, OVMF_CODE_SECBOOT, '/bin/busybox'].find((f) => !existsSync(f));
const vmSkip =
  needs({ root: true, programs: ['qemu-system-x86_64', 'sfdisk', 'mkfs.vfat', 'mmd', 'mcopy', 'dd', 'objcopy', 'sbsign', 'sbverify', 'apt-get', 'dpkg-deb', 'depmod', 'xz', 'zstd'] }) ||
  (missing ? `${missing} is missing (apt-get install systemd-boot-efi ovmf busybox-static)` : false);
t.setTimeout(15 * 60_000);

const live = (vars: readonly StoredVariable[], name: string, guid: string) => vars.filter((v) => v.state === 0x3f && v.name === name && v.guid === guid);

t.test('mosb keyset uefi: the keyset\'s PK, KEK and db, enrolled in OVMF variables', { skip: hostSkip }, async (t) => {
  const dir = t.testdir({});
  const env = { XDG_DATA_HOME: join(dir, 'xdg') };
  const none = await runCli('mosb', ['keyset', 'uefi', 'nope'], { env });
  t.not(none.code, 0, 'a keyset that does not exist');
  t.match(none.stderr, /keyset "nope" does not exist/);
  await createKeyset({ name: 'sb', dataHome: env.XDG_DATA_HOME });
  const vars = join(dir, 'vars.fd');
  const r = await runCli('mosb', ['keyset', 'uefi', 'sb', '--ovmf-vars', vars], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /uefi-pk: .*uefi-pk\/cert\.pem \(created\)\nuefi-kek: .*\(created\)\nuefi-db: .*\(created\)\nOVMF variables with PK, KEK and db enrolled, Secure Boot on: /);
  const keys = uefiKeyPaths({ keyset: 'sb', dataHome: env.XDG_DATA_HOME });
  const before = readFileSync(keys.db.cert);
  const again = await runCli('mosb', ['keyset', 'uefi', 'sb'], { env });
  t.equal(again.code, 0, again.stderr);
  t.notMatch(again.stdout, /created/, 'a second run creates nothing');
  t.ok(readFileSync(keys.db.cert).equals(before), 'and keeps the keys');
  for (const k of ['pk', 'kek', 'db'] as const) {
    t.equal(spawnSync('stat', ['-c', '%a', keys[k].key], { encoding: 'utf8' }).stdout.trim(), '600', `uefi-${k}/privkey.pem is 0600`);
    t.match(readFileSync(keys[k].guid, 'utf8'), /^[0-9a-f-]{36}\n$/, `uefi-${k}/guid`);
    const text = execFileSync('openssl', ['x509', '-in', keys[k].cert, '-noout', '-text'], { encoding: 'utf8' });
    t.match(text, /Public-Key: \(2048 bit\)/, `uefi-${k} is RSA-2048`);
    t.match(text, new RegExp(`Subject: O = mosctl keyset sb, CN = sb UEFI ${k === 'db' ? 'db' : k.toUpperCase()}`));
  }

  const store = readVarStore(await readFile(vars));
  t.equal(readFileSync(vars).length, readFileSync(OVMF_VARS).length, 'the same size as the template');
  const pk = live(store.variables, 'PK', EFI_GLOBAL_VARIABLE);
  const kek = live(store.variables, 'KEK', EFI_GLOBAL_VARIABLE);
  const db = live(store.variables, 'db', EFI_IMAGE_SECURITY_DATABASE);
  t.same([pk.length, kek.length, db.length], [1, 1, 1], 'one PK, KEK and db');
  for (const v of [...pk, ...kek, ...db]) t.equal(v.attributes, 0x27, `${v.name}: non-volatile, boot and runtime, time-based authenticated`);
  t.same(live(store.variables, 'SecureBootEnable', 'f0a30bc7-af08-4556-99c4-001009c93a44').map((v) => [...v.data]), [[1]], 'SecureBootEnable=1');
  // efitools (an independent writer of signature lists): the same bytes for the same certificate and owner.
  if (needs({ programs: ['cert-to-efi-sig-list'] }) === false) {
    for (const [k, v] of [['pk', pk[0]!], ['kek', kek[0]!], ['db', db[0]!]] as const) {
      const esl = join(dir, `${k}.esl`);
      execFileSync('cert-to-efi-sig-list', ['-g', readFileSync(keys[k].guid, 'utf8').trim(), keys[k].cert, esl]);
      t.ok(v.data.equals(readFileSync(esl)), `${v.name} is cert-to-efi-sig-list's list of uefi-${k}`);
    }
  } else t.comment('efitools not installed: signature lists not cross-checked');

  // Debian's Microsoft-enrolled variables as the template: their PK, KEK and db are replaced, the rest kept.
  if (existsSync(MS_VARS)) {
    const out = join(dir, 'ms.fd');
    await writeOvmfVars({ keyset: 'sb', dataHome: env.XDG_DATA_HOME, out, template: MS_VARS });
    const ms = readVarStore(await readFile(MS_VARS)).variables;
    const got = readVarStore(await readFile(out)).variables;
    const pks = live(got, 'PK', EFI_GLOBAL_VARIABLE);
    t.equal(pks.length, 1, 'one live PK');
    t.ok(pks[0]!.data.equals(pk[0]!.data), "and it is the keyset's");
    t.equal(live(got, 'dbx', EFI_IMAGE_SECURITY_DATABASE).length, live(ms, 'dbx', EFI_IMAGE_SECURITY_DATABASE).length, 'dbx kept');
  }
  await t.rejects(writeOvmfVars({ keyset: 'sb', dataHome: env.XDG_DATA_HOME, out: join(dir, 'x.fd'), template: keys.db.cert }), { code: 'INPUT_INVALID', message: /not an OVMF variables file/ });
  await createKeyset({ name: 'bare', dataHome: env.XDG_DATA_HOME });
  await t.rejects(writeOvmfVars({ keyset: 'bare', dataHome: env.XDG_DATA_HOME, out: join(dir, 'x.fd') }), { code: 'TRUST_KEYSET_UNKNOWN', hint: /mosb keyset uefi bare/ });
  t.notOk(existsSync(join(dir, 'x.fd')), 'nothing written by a refusal');
});

const MARK = 'SB-INIT';
const INIT = `#!/bin/sh
b=/bin/busybox
$b mount -t proc proc /proc; $b mount -t sysfs sysfs /sys; $b mount -t securityfs securityfs /sys/kernel/security
echo "${MARK}: initrd started"
echo "${MARK}: lockdown $($b cat /sys/kernel/security/lockdown)"
$b insmod /efivarfs.ko && $b mount -t efivarfs efivarfs /sys/firmware/efi/efivars
echo "${MARK}: SecureBoot=$($b hexdump -v -e '1/1 "%02x"' /sys/firmware/efi/efivars/SecureBoot-${EFI_GLOBAL_VARIABLE})"
echo "${MARK}: done"
$b poweroff -f
`;

/** A GPT disk whose ESP (FAT, mtools: no mount) holds `uki` as EFI/BOOT/BOOTX64.EFI. */
async function espDisk(file: string, uki: string): Promise<void> {
  const { offsets } = await makeGptDisk(file, [{ label: 'esp', sizeMiB: 24, fs: 'none' }]);
  const esp = `${file}.esp`;
  await execFileP('mkfs.vfat', ['-C', '-n', 'ESP', '-i', '5345424f', esp, String(24 * 1024 - 64)]);
  await execFileP('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT']);
  await execFileP('mcopy', ['-i', esp, uki, '::/EFI/BOOT/BOOTX64.EFI']);
  await execFileP('dd', [`if=${esp}`, `of=${file}`, 'bs=1M', `seek=${offsets['esp']! / 2 ** 20}`, 'conv=notrunc,sparse', 'status=none']);
}

const explain = (r: VmRun) => r.lines.map((l) => `${(l.atMs / 1000).toFixed(1).padStart(6)} ${l.text}`).join('\n').slice(-6000);

t.test('OVMF with the keyset enrolled boots the UKI its db key signed and refuses an unsigned or foreign-signed one', { skip: vmSkip }, async (t) => {
  const k = await guestKernel();
  const dir = t.testdir({});
  const xdg = join(dir, 'xdg');
  for (const ks of ['sb', 'foreign']) {
    await createKeyset({ name: ks, dataHome: xdg });
    await createUefiKeys({ keyset: ks, dataHome: xdg });
  }
  const vars = join(dir, 'vars.fd');
  await writeOvmfVars({ keyset: 'sb', dataHome: xdg, out: vars });
  const mine = uefiKeyPaths({ keyset: 'sb', dataHome: xdg }).db;
  const foreign = uefiKeyPaths({ keyset: 'foreign', dataHome: xdg }).db;

  const efivarfs = join(k.modules, 'lib', 'modules', k.kver, 'kernel', 'fs', 'efivarfs', 'efivarfs.ko');
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys'].map((p) => ({ path: p, kind: 'dir' as const, mode: 0o755 })),
    { path: 'dev/console', kind: 'char', mode: 0o600, major: 5, minor: 1 },
    { path: 'bin/busybox', kind: 'file', mode: 0o755, data: readFileSync('/bin/busybox') },
    { path: 'bin/sh', kind: 'symlink', target: 'busybox' },
    { path: 'efivarfs.ko', kind: 'file', mode: 0o644, data: readFileSync(efivarfs) },
    { path: 'init', kind: 'file', mode: 0o755, data: Buffer.from(INIT) },
  ];
  const initrd = join(dir, 'initrd.img');
  await writeFile(initrd, writeCpio(entries));
  const common = { kernel: k.vmlinuz, initrd, cmdline: 'console=ttyS0 panic=-1 loglevel=6' };
  const unsigned = await buildUki({ ...common, out: join(dir, 'unsigned.efi') });
  const other = await buildUki({ ...common, out: join(dir, 'foreign.efi'), sign: { key: foreign.key, cert: foreign.cert } });
  const signed = await buildUki({ ...common, out: join(dir, 'signed.efi'), sign: { key: mine.key, cert: mine.cert } });
  t.ok(!unsigned.signed && other.signed && signed.signed);
  t.equal(spawnSync('sbverify', ['--cert', foreign.cert, other.out]).status, 0, "the foreign UKI's signature is valid, by the foreign db key");
  t.not(spawnSync('sbverify', ['--cert', mine.cert, other.out]).status, 0, 'and not by ours');
  t.equal(spawnSync('sbverify', ['--cert', mine.cert, signed.out]).status, 0, 'the signed UKI verifies with the keyset db certificate');
  // The embedded kernel keeps Debian's signature only: bookworm's systemd-stub 252 enters it through the EFI
  // handover protocol (no LoadImage), so the firmware checks the UKI's signature, which covers .linux, and
  // nothing else. A stub that loads the kernel with LoadImage would need it signed by db too.
  const linux = join(dir, 'linux.efi');
  execFileSync('objcopy', ['-O', 'binary', '--only-section=.linux', signed.out, linux]);
  t.not(spawnSync('sbverify', ['--cert', mine.cert, linux]).status, 0, 'the kernel inside is not signed by the keyset db key (Debian signed it)');

  const disks = [];
  for (const [i, uki] of [unsigned.out, other.out, signed.out].entries()) {
    const file = join(dir, `disk${i}.img`);
    await espDisk(file, uki);
    disks.push({ file, bootIndex: i + 1 });
  }
  const run = await runVm(t, { uefi: { vars, secureBoot: true }, memMiB: 512, disks, timeoutMs: 400_000, until: new RegExp(`${MARK}: done|Kernel panic`) });
  const c = run.console;
  t.comment(`boot: ${(run.durationMs / 1000).toFixed(1)} s`);
  const tried = [...c.matchAll(/BdsDxe: (failed to load|starting) (Boot\d+) "[^"]*" from (\S+?)(?:: (.*?))?\r?$/gm)].map((m) => ({ what: m[1]!, option: m[2]!, path: m[3]!, why: m[4] ?? '' }));
  t.comment(tried.map((x) => `${x.what} ${x.option} ${x.path} ${x.why}`).join('\n'));
  t.equal(tried.length, 3, 'the firmware tried the three disks', { diag: explain(run) });
  t.match(tried[0], { what: 'failed to load', why: /Access Denied/ }, 'the unsigned UKI is refused', { diag: explain(run) });
  t.match(tried[1], { what: 'failed to load', why: /Access Denied/ }, 'the UKI signed by a foreign db key is refused');
  t.match(tried[2], { what: 'starting' }, 'the UKI signed by the keyset db key is started');
  t.equal(new Set(tried.map((x) => x.path)).size, 3, 'three different disks');
  t.match(c, /EFI stub: UEFI Secure Boot is enabled\./, "the kernel's EFI stub sees Secure Boot on", { diag: explain(run) });
  t.match(c, /Kernel is locked down from EFI Secure Boot/, 'and the kernel locks itself down');
  t.match(c, /integrity: Loaded X\.509 cert 'mosctl keyset sb: sb UEFI db/, "it loaded the keyset's db certificate from the firmware into its platform keyring");
  t.match(c, `${MARK}: initrd started`, "the UKI's initrd runs", { diag: explain(run) });
  t.match(c, new RegExp(`${MARK}: SecureBoot=0600000001`), 'and reads SecureBoot=1 from the firmware (attributes BS+RT, value 1)', { diag: explain(run) });
  t.match(c, new RegExp(`${MARK}: lockdown .*\\[integrity\\]`), 'the kernel locked itself down (integrity), as Debian does under Secure Boot');
  const at = (re: RegExp) => (run.lines.find((l) => re.test(l.text))?.atMs ?? NaN) / 1000;
  t.comment(`power-on to first refusal ${at(/failed to load/).toFixed(1)} s, to the signed UKI ${at(/BdsDxe: starting/).toFixed(1)} s, to the initrd ${at(new RegExp(`${MARK}: initrd started`)).toFixed(1)} s`);
});
