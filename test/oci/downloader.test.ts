import { t, type Test } from 'tap';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MosError, sha256Digest } from '../../src/base/index.js';
import { DOWNLOADER_DEFAULT_ID, Downloader, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, copy, downloaderIds, fsck, openLayout, openRepository, type DownloaderIds } from '../../src/oci/index.js';
import { needs } from '../support/env.js';
import { TEST_DOWNLOADER_UID } from '../support/cli.js';
import { testRandom } from '../support/random.js';
import { startRegistry } from '../support/registry.js';

// The unprivileged downloader: registry traffic and the parsing of registry replies run in a child
// under its own uid; root checks whatever it answers. Against a real docker-registry; the child is the
// built one (npm test builds first), optionally with a module that plays a compromised parser.

const skip = needs({ root: true, programs: ['docker-registry'] });
const top = fileURLToPath(new URL('../..', import.meta.url));
const childMain = join(top, 'dist', 'src', 'oci', 'downloader', 'child-main.js');
const compromised = join(top, 'test', 'support', 'compromised-downloader.mjs');
const ids: DownloaderIds = { uid: TEST_DOWNLOADER_UID, gid: TEST_DOWNLOADER_UID };
const rnd = testRandom('downloader');

async function published(t: Test) {
  const reg = await startRegistry(t);
  const push = openRepository({ host: reg.host, name: 'mos/x' });
  const layer = Buffer.from(rnd.bytes(3 * 1024 * 1024 + 11));
  const config = Buffer.from('{}');
  const layerDesc = { mediaType: OCI_LAYER_TAR, digest: sha256Digest(layer), size: layer.length };
  const configDesc = { mediaType: OCI_CONFIG, digest: sha256Digest(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: [layerDesc] }));
  const desc = { mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.length };
  await push.pushBlob(layerDesc, [layer] as unknown as AsyncIterable<Uint8Array>);
  await push.pushBlob(configDesc, [config] as unknown as AsyncIterable<Uint8Array>);
  await push.pushManifest(desc, manifest, { tag: 'v1' });
  return { reg, desc, layerDesc, layer };
}

function downloader(t: Test): Downloader {
  const dl = new Downloader({ user: ids, command: [process.execPath, childMain] });
  t.teardown(() => dl.close());
  return dl;
}

function statusOf(pid: number): { uid: number[]; gid: number[]; groups: string; capEff: string } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:[ \\t]*(.*)$`, 'm').exec(s)?.[1]?.trim() ?? '';
  return { uid: field('Uid').split(/\s+/).map(Number), gid: field('Gid').split(/\s+/).map(Number), groups: field('Groups'), capEff: field('CapEff') };
}

t.test('a copy through the downloader: the child runs as the unprivileged uid with no groups or capabilities', { skip }, async (t) => {
  const p = await published(t);
  const dl = downloader(t);
  const store = await openLayout(join(t.testdir({}), 'store'), { create: true });
  const src = dl.openRepository({ host: p.reg.host, name: 'mos/x' });
  const r = await copy({ src, dst: store, reference: 'v1', tag: 'v1' });
  t.equal(r.descriptor.digest, p.desc.digest);
  t.ok((await fsck(store)).ok, 'the store is fsck-clean');
  const pid = dl.pid;
  t.ok(pid, 'the child is running');
  const st = statusOf(pid!);
  t.same(st.uid, [ids.uid, ids.uid, ids.uid, ids.uid], 'real, effective, saved and fs uid');
  t.same(st.gid, [ids.gid, ids.gid, ids.gid, ids.gid], 'and gid');
  t.equal(st.groups, '', 'no supplementary groups');
  t.equal(st.capEff, '0000000000000000', 'no capabilities');
});

t.test('a compromised child can write nothing of the store or the machine', { skip }, async (t) => {
  const p = await published(t);
  const dir = join(t.testdir({}), 'store');
  const store = await openLayout(dir, { create: true });
  await copy({ src: openRepository({ host: p.reg.host, name: 'mos/x' }), dst: store, reference: 'v1', tag: 'v1' });
  mkdirSync(join(dir, 'ingest'), { recursive: true });
  const targets = [join(dir, 'blobs', 'sha256') + '/', join(dir, 'blobs', 'sha256', p.layerDesc.digest.slice(7)), join(dir, 'index.json'), join(dir, 'ingest') + '/', dir + '/', '/etc/passwd', '/root/'];
  const before = readdirSync(join(dir, 'blobs', 'sha256')).sort();
  let report: Record<string, unknown> | undefined;
  const dl = new Downloader({
    user: ids,
    command: [process.execPath, '--import', `file://${compromised}`, childMain, JSON.stringify(targets), 'write'],
    log: { debug() {}, warn() {}, info: (msg, fields) => msg === 'compromised-writes' && (report = fields) },
  });
  t.teardown(() => dl.close());
  await dl.openRepository({ host: p.reg.host, name: 'mos/x' }).resolve('v1');
  t.ok(report, 'the child reported');
  const outcomes = report!['outcomes'] as Record<string, string>;
  for (const target of targets) t.match(outcomes[target], /^E(ACCES|PERM)$/, `${target}: ${outcomes[target]}`);
  t.match(outcomes['/proc/1/mem'], /^E(ACCES|PERM)$/, 'cannot read another process’s memory');
  t.equal(report!['uid'], ids.uid);
  t.same(report!['groups'], [ids.gid], 'its only group is its own (node lists the effective gid)');
  t.same(readdirSync(join(dir, 'blobs', 'sha256')).sort(), before, 'blobs/ unchanged');
  t.ok((await fsck(store)).ok);
});

t.test('blob bytes the child corrupts are rejected by root; nothing is stored', { skip }, async (t) => {
  const p = await published(t);
  const dir = join(t.testdir({}), 'store');
  const store = await openLayout(dir, { create: true });
  const dl = new Downloader({ user: ids, command: [process.execPath, '--import', `file://${compromised}`, childMain, 'flip'] });
  t.teardown(() => dl.close());
  await t.rejects(copy({ src: dl.openRepository({ host: p.reg.host, name: 'mos/x' }), dst: store, reference: p.desc, tag: 'v1' }), { code: /^OCI_(DIGEST|SIZE)_MISMATCH$/ });
  const stored = readdirSync(join(dir, 'blobs', 'sha256'));
  t.notOk(stored.includes(p.layerDesc.digest.slice(7)), 'the layer is not stored');
  t.notOk(stored.includes(p.desc.digest.slice(7)), 'nor the manifest');
  t.same(readdirSync(join(dir, 'ingest')), [], 'nothing left in ingest/');
});

t.test('a child that breaks the frame protocol is stopped and named', { skip }, async (t) => {
  const p = await published(t);
  const store = await openLayout(join(t.testdir({}), 'store'), { create: true });
  const dl = new Downloader({ user: ids, command: [process.execPath, '--import', `file://${compromised}`, childMain, 'flood'] });
  t.teardown(() => dl.close());
  const err = await copy({ src: dl.openRepository({ host: p.reg.host, name: 'mos/x' }), dst: store, reference: p.desc, tag: 'v1' }).catch((e: unknown) => e);
  t.type(err, MosError);
  t.match((err as MosError).code, /^(REGISTRY_PROTOCOL|HOST_EXEC_FAILED)$/);
  t.match((err as MosError).message, /malformed frame|exited/);
});

t.test('a child that stalls a blob is given up on after the stall timeout', { skip }, async (t) => {
  const p = await published(t);
  const store = await openLayout(join(t.testdir({}), 'store'), { create: true });
  const dl = new Downloader({ user: ids, command: [process.execPath, '--import', `file://${compromised}`, childMain, 'stall'] });
  t.teardown(() => dl.close());
  const src = dl.openRepository({ host: p.reg.host, name: 'mos/x', stallTimeoutMs: 300, requestTimeoutMs: 300, maxRetryAfterMs: 0 });
  await t.rejects(copy({ src, dst: store, reference: p.desc, tag: 'v1' }), { code: 'REGISTRY_TIMEOUT', message: /downloader sent nothing/ });
});

t.test('a downloader that cannot start fails the read with one clear error', { skip }, async (t) => {
  const p = await published(t);
  const dl = new Downloader({ user: ids, command: [process.execPath, '/nonexistent/child.js'] });
  t.teardown(() => dl.close());
  const err = await dl.openRepository({ host: p.reg.host, name: 'mos/x' }).resolve('v1').catch((e: unknown) => e);
  t.match(err, { code: 'HOST_EXEC_FAILED', subject: `downloader (uid ${ids.uid})` });
});

t.test('the downloader user: a name is looked up, created when missing; numbers need no entry; root is refused', async (t) => {
  const etc = t.testdir({});
  copyFileSync('/etc/passwd', join(etc, 'passwd'));
  copyFileSync('/etc/group', join(etc, 'group'));
  const created = await downloaderIds('mosctl-test-dl', { etc });
  t.ok(created.created, 'created');
  t.ok(created.uid >= DOWNLOADER_DEFAULT_ID);
  t.match(readFileSync(join(etc, 'passwd'), 'utf8'), new RegExp(`^mosctl-test-dl:x:${created.uid}:${created.gid}:mosctl downloader:/nonexistent:/usr/sbin/nologin$`, 'm'));
  t.match(readFileSync(join(etc, 'group'), 'utf8'), new RegExp(`^mosctl-test-dl:x:${created.gid}:$`, 'm'));
  const again = await downloaderIds('mosctl-test-dl', { etc });
  t.same({ uid: again.uid, gid: again.gid, created: again.created }, { uid: created.uid, gid: created.gid, created: undefined }, 'found the second time');
  // The id is free in both files: taken ids are skipped.
  writeFileSync(join(etc, 'passwd'), readFileSync(join(etc, 'passwd'), 'utf8') + `x1:x:${created.uid + 1}:${created.uid + 1}::/:/bin/false\n`);
  const other = await downloaderIds('other-dl', { etc });
  t.equal(other.uid, created.uid + 2);
  t.same(await downloaderIds('64123'), { uid: 64123, gid: 64123 });
  t.same(await downloaderIds('64123:64124'), { uid: 64123, gid: 64124 });
  await t.rejects(downloaderIds('0'), { code: 'USAGE', message: /never runs as root/ });
  await t.rejects(downloaderIds('root', { etc }), { code: 'USAGE', message: /never runs as root/ });
  await t.rejects(downloaderIds('Bad Name', { etc }), { code: 'USAGE' });
  t.equal(await downloaderIds('mosctl-test-none', { etc, create: false }), undefined, 'create: false looks up only');
  t.notMatch(readFileSync(join(etc, 'passwd'), 'utf8'), /mosctl-test-none/, 'and writes nothing');
  const ro = join(etc, 'missing');
  const noEtc = await downloaderIds('mosctl-download', { etc: ro });
  t.equal(noEtc.uid, DOWNLOADER_DEFAULT_ID, 'no writable /etc (an initrd): the default id without an entry');
});
