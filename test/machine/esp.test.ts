// The installer's boot step on the host (the whole `install --partition` runs in the VM, test/boot/cd-install):
// a release published with the keyset's bootkit is installed into a root, and writeEsp puts the bootkit
// target's UKI on an ESP directory, read through a verified atomfs mount of the new store and unmounted
// again; --uki overrides it; a release without a bootkit leaves the ESP empty; a bootkit image without
// bootkit/kernel.efi or a --uki that is no EFI executable is refused with the ESP untouched. `mosctl
// boot` does not activate the bootkit and status does not ask for it.
import { t } from 'tap';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STUB, buildUki, createBootkit, createKeyset, createProject, publish } from '../../src/build/index.js';
import { boot, install, statusModel } from '../../src/machine/index.js';
import { writeEsp } from '../../src/machine/esp.js';
import { needs } from '../support/env.js';
import { makeSystemRoot, mountsUnder } from '../support/system.js';
import { buildImages, manifestYaml } from '../publish/fixture.js';

const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup', 'objcopy'] }) || (existsSync(DEFAULT_STUB) ? false : `${DEFAULT_STUB} is missing (apt-get install systemd-boot-efi)`);

async function makeUki(dir: string, name: string): Promise<string> {
  writeFileSync(join(dir, `${name}.kernel`), Buffer.concat([Buffer.from('MZ'), Buffer.alloc(8192, name)]));
  writeFileSync(join(dir, `${name}.initrd`), `initrd of ${name}\n`);
  const out = join(dir, `${name}.efi`);
  await buildUki({ kernel: join(dir, `${name}.kernel`), initrd: join(dir, `${name}.initrd`), cmdline: `console=ttyS0 uki=${name}`, out });
  return out;
}

const atomfsMounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('mosctl-bootkit-'));

t.test('the installed ESP gets the bootkit target\'s UKI', { skip }, async (t) => {
  const dir = t.testdir({});
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'ks', dataHome });
  await createProject({ keyset: 'ks', project: 'p', dataHome });
  const images = await buildImages(dir);
  const [ukiA, ukiB] = [await makeUki(dir, 'a'), await makeUki(dir, 'b')];
  const bootkit = await createBootkit({ keyset: 'ks', uki: ukiA, dataHome });
  const ca = join(dataHome, 'machine', 'trust', 'keys', 'ks', 'manifest-ca', 'cert.pem');
  const rel = join(dir, 'rel');
  const pub = async (name: string, yaml: string, extra: { skipBootkit?: boolean } = {}) => {
    writeFileSync(join(dir, `${name}.yaml`), yaml);
    return publish({ manifestFile: join(dir, `${name}.yaml`), repo: `oci:${rel}`, name: `machine/install:${name}`, project: 'ks:p', dataHome, ...extra });
  };
  const installed = async (tag: string) => {
    const root = makeSystemRoot(t);
    mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
    copyFileSync(ca, join(root, 'factory', 'secure', 'manifestCA.pem'));
    await install({ root, source: `oci:${rel}:${tag}` });
    return root;
  };
  const esp = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d);
    return d;
  };
  const espFiles = (d: string) => ['EFI/BOOT/BOOTX64.EFI', 'EFI/mosctl/mosctl.efi'].map((f) => readFileSync(join(d, f)));

  t.same((await pub('1.0', manifestYaml(images))).added, ['bootkit'], 'published with the keyset\'s bootkit');
  const root = await installed('1.0');

  await t.test('from the bootkit target, through a verified mount that is gone afterwards', async (t) => {
    const e = esp('esp');
    const r = await writeEsp({ root, esp: e });
    t.same(r, { from: 'bootkit', digest: bootkit.digest, version: '1.0.0', files: ['EFI/BOOT/BOOTX64.EFI', 'EFI/mosctl/mosctl.efi'] });
    for (const b of espFiles(e)) t.ok(b.equals(readFileSync(ukiA)), 'the ESP holds the bootkit\'s UKI, byte for byte');
    t.same(mountsUnder(root), [], 'no layer mount left under the root');
    t.same(atomfsMounts(), [], 'the bootkit mount is gone');
    t.same(readdirSync(join(e, 'EFI', 'BOOT')), ['BOOTX64.EFI'], 'no temp file on the ESP');
  });

  await t.test('--uki overrides it', async (t) => {
    const e = esp('esp-uki');
    const r = await writeEsp({ root, esp: e, uki: ukiB });
    t.same(r, { from: 'file', path: ukiB, files: ['EFI/BOOT/BOOTX64.EFI', 'EFI/mosctl/mosctl.efi'] });
    for (const b of espFiles(e)) t.ok(b.equals(readFileSync(ukiB)), 'the given UKI');
    writeFileSync(join(dir, 'text.efi'), 'not a PE\n');
    const bad = esp('esp-bad-uki');
    await t.rejects(writeEsp({ root, esp: bad, uki: join(dir, 'text.efi') }), { code: 'INPUT_INVALID', subject: `UKI ${join(dir, 'text.efi')}`, message: /no MZ header/ });
    t.same(readdirSync(bad), [], 'nothing written');
  });

  await t.test('boot skips the bootkit, status asks nothing of it', async (t) => {
    const b = await boot({ root, dryRun: true });
    t.same(b.targets.map((x) => x.ok && x.target), ['data'], 'only data is activated (hostfs is the root, the bootkit is no service)');
    const s = await statusModel(root);
    t.same(s.status.targets.map((x) => [x.name, x.apply]), [['hostfs', 'none'], ['data', 'activate'], ['bootkit', 'none']]);
  });

  await t.test('no bootkit target: nothing written', async (t) => {
    t.same((await pub('nobk', manifestYaml(images), { skipBootkit: true })).added, []);
    const plain = await installed('nobk');
    const e = esp('esp-none');
    t.equal(await writeEsp({ root: plain, esp: e }), undefined);
    t.same(readdirSync(e), [], 'the ESP stays empty');
  });

  await t.test('a bootkit image without bootkit/kernel.efi is refused, the ESP untouched', async (t) => {
    const own = manifestYaml(images).replace('  - service_name: data', '  - service_name: bootkit');
    await pub('badbk', own);
    const broken = await installed('badbk');
    const e = esp('esp-badbk');
    await t.rejects(writeEsp({ root: broken, esp: e }), { code: 'NOT_FOUND', subject: 'target bootkit: bootkit/kernel.efi', message: 'is not in the bootkit image', hint: /--uki/ });
    t.same(readdirSync(e), [], 'nothing written');
    t.same(mountsUnder(broken), [], 'and unmounted again');
    t.same(atomfsMounts(), []);
  });
});
