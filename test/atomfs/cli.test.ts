import { t, type Test } from 'tap';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { runCli } from '../support/cli.js';
import { mintPki } from '../support/pki.js';
import { atomfsEnv, buildLayer, loopsBelow, mountsBelow, type AtomfsEnv, type TestLayer } from '../support/squashfs-fixtures.js';
import { createConfigRepo } from '../../src/config/index.js';
import { serializeInstallFile, serializeSysManifest, type InstallFile } from '../../src/manifest/index.js';
import { openLayout, OCI_MANIFEST, type Descriptor } from '../../src/oci/index.js';
import { sha256Digest, sha256Hex } from '../../src/base/index.js';

const skip = needs({ root: true, programs: ['mksquashfs', 'veritysetup', 'openssl', 'git', 'flock'] });

// Puts an image of `layers` into the env's store; returns its manifest descriptor.
async function storeImage(env: AtomfsEnv, layers: readonly TestLayer[]): Promise<Descriptor> {
  const store = await openLayout(join(env.root, 'atomfs-store', 'mos'), { create: true });
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.byteLength };
  await store.pushBlob(configDesc, (async function* () { yield config; })());
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: configDesc,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: readFileSync(l.path).byteLength, ...(l.annotations ? { annotations: l.annotations } : {}) })),
  }));
  const desc = { mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.byteLength };
  await store.pushManifest(desc, manifest, { tag: desc.digest });
  return desc;
}

// An installed system: signed install manifest with a hostfs target (3 layers) and an fs-only target.
async function installed(t: Test) {
  const env = atomfsEnv(t);
  const hostLayers = [
    buildLayer(env, { files: { 'etc/os-release': 'base\n', 'etc/old': 'x\n' } }),
    buildLayer(env, { files: { 'etc/old': { whiteout: true }, 'bin/sh': 'shell\n' } }),
    buildLayer(env, { files: { 'etc/os-release': 'top\n' } }),
  ];
  const appLayer = buildLayer(env, { files: { 'app': 'v1\n' } });
  const host = await storeImage(env, hostLayers);
  const app = await storeImage(env, [appLayer]);
  const net = { type: 'host' as const, ipv4: '', ipv6: '', ports: null };
  const target = (name: string, type: 'hostfs' | 'fs-only', d: Descriptor) =>
    ({ service_name: name, version: '1.0.0', service_type: type, network: net, nsgroup: '', digest: d.digest, storage: null, size: d.size });
  const file: InstallFile = { version: 1, product: 'de6c82c5-2e01-4c92-949b-a6545d30fc06', storage: [], targets: [target('hostfs', 'hostfs', host), target('app', 'fs-only', app)], update_type: 'complete' };
  const raw = serializeInstallFile(file);
  const sha = sha256Hex(raw);
  const pki = await mintPki(t, { caKey: 'ec256', leafKey: 'ec256' });
  const rawPath = join(env.root, 'install.json');
  writeFileSync(rawPath, raw);
  const sig = readFileSync(await pki.sign(rawPath));
  mkdirSync(join(env.root, 'factory', 'secure'), { recursive: true });
  copyFileSync(pki.caCert, join(env.root, 'factory', 'secure', 'manifestCA.pem'));
  const sys = serializeSysManifest({ uidmaps: [], targets: file.targets.map((x) => ({ name: x.service_name, source: `${sha}.json` })), storage: [] });
  const files = new Map<string, Uint8Array>([
    ['manifest.json', sys],
    [`${sha}.json`, raw],
    [`${sha}.json.signed`, sig],
    [`${sha}.pem`, readFileSync(pki.chainPem)],
  ]);
  await createConfigRepo({ root: env.root, files, message: 'Initial commit', now: new Date() });
  return { env, hostLayers, appLayer };
}

t.test('mosctl mount, create-boot-fs and umount on an installed system', { skip }, async (t) => {
  const { env, hostLayers } = await installed(t);
  const r = (args: string[]) => runCli('mosctl', ['--root', env.root, ...args]);

  const dry = await r(['mount', '--dry-run']);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /mount -t overlay overlay -o lowerdir=.*upperdir=/);
  t.same(mountsBelow(env.root), [], 'dry run mounts nothing');

  const boot = join(env.root, 'sysroot');
  const cb = await r(['--json', 'create-boot-fs', '--dest', boot]);
  t.equal(cb.code, 0, cb.stderr);
  t.match(cb.json, { target: 'hostfs', dest: boot, writable: true, layers: [{}, {}, {}] });
  t.equal(readFileSync(join(boot, 'etc/os-release'), 'utf8'), 'top\n');
  t.notOk(existsSync(join(boot, 'etc/old')), 'deletion honoured');
  writeFileSync(join(boot, 'etc/new'), 'w');

  const app = await r(['mount', '--target', 'app', '--readonly']);
  t.equal(app.code, 0, app.stderr);
  const appDest = join(env.root, 'mnt', 'mos', 'app');
  t.equal(readFileSync(join(appDest, 'app'), 'utf8'), 'v1\n');

  const unknown = await r(['mount', '--target', 'nope']);
  t.equal(unknown.code, 6);
  t.match(unknown.stderr, /target nope: is not in the installed system/);

  const u1 = await r(['umount', '--dest', boot]);
  t.equal(u1.code, 0, u1.stderr);
  const u2 = await r(['umount', '-t', 'app']); // where mount -t app put it
  t.equal(u2.code, 0, u2.stderr);
  t.equal(u2.stdout.trim(), `unmounted ${appDest}`);
  t.equal((await r(['umount'])).code, 2, 'umount without --dest or -t is a usage error');
  t.equal((await r(['umount', '--dest', boot])).stdout.trim(), `nothing mounted at ${boot}`, 'umount is idempotent');
  t.same(mountsBelow(env.root), []);
  t.same(loopsBelow(env.root), []);
  t.same(readdirSync(join(env.root, 'scratch-writes')), ['atomfs']);

  // Tamper with the middle hostfs layer: refused, named, nothing mounted.
  const blob = hostLayers[1]!.path;
  const bytes = readFileSync(blob);
  bytes[150] = bytes[150]! ^ 0x55;
  writeFileSync(blob, bytes);
  const bad = await r(['create-boot-fs', '--dest', boot]);
  t.equal(bad.code, 5);
  t.match(bad.stderr, `layer ${hostLayers[1]!.digest}: verity check failed`);
  t.same(mountsBelow(env.root), [], 'nothing mounted');
});

t.test('mount refuses a system whose CA does not verify the manifest', { skip }, async (t) => {
  const { env } = await installed(t);
  const other = await mintPki(t, { caKey: 'ec256', leafKey: 'ec256', keySalt: 'other' });
  const r = await runCli('mosctl', ['--root', env.root, 'mount', '--capath', other.caCert]);
  t.equal(r.code, 4, r.stderr);
  t.same(mountsBelow(env.root), []);
});
