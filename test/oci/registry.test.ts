import { t } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRepository, OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER_TAR, OCI_EMPTY, EMPTY_JSON_DIGEST, fallbackTag, type RegistryRepository, type Descriptor, type RegistryOptions } from '../../src/oci/index.js';
import { needs } from '../support/env.js';
import { startRegistry, digestOf } from '../support/registry.js';
import { testRandom } from '../support/random.js';

// Test data from a seeded source: the seed is printed, MOSCTL_TEST_SEED replays it.
const rnd = testRandom('oci/registry');

const skip = needs({ programs: ['docker-registry', 'openssl', 'htpasswd'] });

function blobDesc(bytes: Uint8Array, mediaType = OCI_LAYER_TAR): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.byteLength };
}
async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}
async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** Pushes config + layers + manifest; returns the manifest descriptor and bytes. */
async function pushImage(repo: RegistryRepository, layers: Uint8Array[], tag?: string, extra: Record<string, unknown> = {}) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l)) } }));
  const cd = blobDesc(config, OCI_CONFIG);
  await repo.pushBlob(cd, once(config));
  const lds = [];
  for (const l of layers) {
    const d = blobDesc(l);
    await repo.pushBlob(d, once(l));
    lds.push(d);
  }
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: cd, layers: lds, ...extra }));
  const desc = blobDesc(bytes, OCI_MANIFEST);
  await repo.pushManifest(desc, bytes, tag !== undefined ? { tag } : {});
  return { desc, bytes, config: cd, layers: lds };
}

t.test('plain docker-registry: push, pull, exists, tags, mount, index', { skip }, async (t) => {
  const reg = await startRegistry(t);
  const repo = openRepository({ host: reg.host, name: 'mos/test', chunkSize: 64 * 1024 });
  const small = rnd.bytes(1000);
  const large = rnd.bytes(200 * 1024 + 17); // chunked: 4 PATCHes of 64 KiB
  const img = await pushImage(repo, [small, large], 'v1');

  t.strictSame(await repo.resolve('v1'), img.desc, 'tag resolves to the pushed manifest');
  t.strictSame(Buffer.from(await repo.fetchBytes(img.desc)), img.bytes, 'manifest bytes round-trip exactly');
  t.strictSame(await collect(repo.fetchBlob(img.layers[1]!)), large, 'chunked blob reads back');
  t.strictSame(Buffer.from(await repo.fetchBytes(img.config)).length, img.config.size);
  t.ok(repo.stats.blobBytesFetched >= large.length, 'blob bytes are counted');
  t.equal(await repo.exists(img.layers[0]!), true);
  t.equal(await repo.exists(blobDesc(rnd.bytes(10))), false);
  t.equal(await repo.exists(img.desc), true);

  await repo.tag(img.desc, 'v2');
  t.strictSame((await repo.listTags()).sort(), ['v1', 'v2']);

  await t.rejects(repo.resolve('nope'), { code: 'OCI_TAG_UNKNOWN', subject: new RegExp(`^http://${reg.host}/v2/mos/test/manifests/nope$`) });
  await t.rejects(collect(repo.fetchBlob(blobDesc(rnd.bytes(5)))), { code: 'OCI_BLOB_UNKNOWN' });
  await t.rejects(collect(repo.fetchBlob({ ...img.layers[0]!, size: small.length - 1 })), { code: 'OCI_SIZE_MISMATCH' }, 'a wrong size in the descriptor is caught while streaming');

  // cross-repository mount: the blob appears in the other repo without being read from our stream
  const other = openRepository({ host: reg.host, name: 'other/repo' });
  let read = false;
  await other.pushBlob(img.layers[1]!, (async function* () { read = true; yield large; })(), { mountFrom: 'mos/test' });
  t.equal(read, false, 'mounted, not uploaded');
  t.equal(await other.exists(img.layers[1]!), true);

  // an index: the host platform (amd64 here) is picked, an unknown one is refused naming what exists
  const arm = await pushImage(repo, [rnd.bytes(10)]);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: [
      { mediaType: 'application/vnd.example.unknown', digest: img.desc.digest, size: 1, platform: { architecture: 'amd64', os: 'linux' } },
      { ...arm.desc, platform: { architecture: 'arm64', os: 'linux' } },
      { ...img.desc, platform: { architecture: 'amd64', os: 'linux' } },
    ],
  }));
  await repo.pushManifest(blobDesc(index, OCI_INDEX), index, { tag: 'multi' });
  t.equal((await repo.resolveImage('multi', { platform: { architecture: 'arm64', os: 'linux' } })).descriptor.digest, arm.desc.digest);
  t.equal((await repo.resolveImage('multi', { platform: { architecture: 'amd64', os: 'linux' } })).descriptor.digest, img.desc.digest);
  await t.rejects(repo.resolveImage('multi', { platform: { architecture: 's390x', os: 'linux' } }), { code: 'OCI_MANIFEST_UNKNOWN', message: /linux\/s390x.*linux\/arm64, linux\/amd64/ });

  // bad input changes nothing: a manifest whose bytes do not match its descriptor is refused before any request
  await t.rejects(repo.pushManifest({ ...img.desc, size: img.desc.size + 1 }, img.bytes, { tag: 'bad' }), { code: 'OCI_SIZE_MISMATCH' });
  await t.rejects(repo.resolve('bad'), { code: 'OCI_TAG_UNKNOWN' });
});

t.test('skopeo interop: skopeo pushes, we read; we push, skopeo reads', { skip: skip || needs({ programs: ['skopeo'] }) }, async (t) => {
  const reg = await startRegistry(t);
  // A tiny OCI layout written by hand, pushed by skopeo.
  const dir = t.testdir({});
  const layer = rnd.bytes(3000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(layer)] } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: blobDesc(config, OCI_CONFIG), layers: [blobDesc(layer)] }));
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) writeFileSync(join(dir, 'blobs', 'sha256', digestOf(b).slice(7)), b);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...blobDesc(manifest, OCI_MANIFEST), annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  const sk = spawnSync('skopeo', ['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${dir}:v1`, `docker://${reg.host}/mos/sk:v1`], { encoding: 'utf8' });
  t.equal(sk.status, 0, sk.stderr);

  const repo = openRepository({ host: reg.host, name: 'mos/sk' });
  const got = await repo.fetchManifest('v1');
  t.equal(got.descriptor.digest, digestOf(manifest), 'same manifest digest as the layout');
  t.strictSame(await collect(repo.fetchBlob(blobDesc(layer))), layer);

  const mine = await pushImage(openRepository({ host: reg.host, name: 'mos/ours' }), [rnd.bytes(500)], 'v1');
  const raw = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/mos/ours:v1`]);
  t.equal(raw.status, 0, raw.stderr.toString());
  t.strictSame(raw.stdout, mine.bytes, 'skopeo reads our exact manifest bytes');
  const pulled = t.testdir({});
  const cp = spawnSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/mos/ours:v1`, `oci:${pulled}:x`], { encoding: 'utf8' });
  t.equal(cp.status, 0, cp.stderr);
});

t.test('artifacts with a subject: fallback tag index maintained, referrers() finds them', { skip }, async (t) => {
  const reg = await startRegistry(t);
  const repo = openRepository({ host: reg.host, name: 'machine/install' });
  const img = await pushImage(repo, [rnd.bytes(100)], 'v1');
  t.strictSame(await repo.referrers(img.desc), [], 'none yet (no fallback tag: empty list)');
  await repo.pushBlob({ mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 }, once(Buffer.from('{}')));
  const artifact = async (type: string, note: string) => {
    const blob = Buffer.from(note);
    await repo.pushBlob(blobDesc(blob, 'application/octet-stream'), once(blob));
    const bytes = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type,
      config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
      layers: [blobDesc(blob, 'application/octet-stream')], subject: img.desc, annotations: { note },
    }));
    const desc = blobDesc(bytes, OCI_MANIFEST);
    return { desc, push: () => repo.pushManifest(desc, bytes) };
  };
  const sig = await artifact('application/vnd.machine.signature', 'sig');
  const certs = await Promise.all([1, 2, 3, 4].map((i) => artifact('application/vnd.machine.pubkeycrt', `cert${i}`)));
  // Concurrent writers of one fallback tag are serialised: none is lost.
  await Promise.all([sig, ...certs].map((a) => a.push()));
  await sig.push(); // idempotent: not added twice

  const all = await repo.referrers(img.desc.digest);
  t.equal(all.length, 5);
  t.strictSame(new Set(all.map((d) => d.digest)), new Set([sig, ...certs].map((a) => a.desc.digest)));
  const sigs = await repo.referrers(img.desc, { artifactType: 'application/vnd.machine.signature' });
  t.strictSame(sigs, [{ ...sig.desc, artifactType: 'application/vnd.machine.signature', annotations: { note: 'sig' } }]);
  const fallback = await repo.fetchManifest(fallbackTag(img.desc.digest));
  t.equal(fallback.descriptor.mediaType, OCI_INDEX, 'the sha256-<hex> tag holds an OCI index');
  t.equal(fallbackTag(img.desc.digest), `sha256-${img.desc.digest.slice(7)}`);
});

t.test('htpasswd Basic auth: auth file credentials, wrong ones refused without leaking them', { skip }, async (t) => {
  const reg = await startRegistry(t, { auth: 'basic' });
  const dir = t.testdir({});
  const authFile = (user: string, pass: string) => {
    const f = join(dir, `${user}-${pass}.json`);
    writeFileSync(f, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } }));
    return f;
  };
  const ok = openRepository({ host: reg.host, name: 'mos/basic', authFile: authFile('mosuser', 's3cret') });
  const img = await pushImage(ok, [rnd.bytes(64)], 'v1');
  t.equal((await ok.resolve('v1')).digest, img.desc.digest);
  // username/password form, and $REGISTRY_AUTH_FILE
  const f2 = join(dir, 'containers-auth.json');
  writeFileSync(f2, JSON.stringify({ auths: { [`http://${reg.host}`]: { username: 'mosuser', password: 's3cret' } } }));
  process.env.REGISTRY_AUTH_FILE = f2;
  t.teardown(() => void delete process.env.REGISTRY_AUTH_FILE);
  t.equal((await openRepository({ host: reg.host, name: 'mos/basic' }).resolve('v1')).digest, img.desc.digest);

  const secret = 'Wr0ngSecretXYZ';
  const bad = openRepository({ host: reg.host, name: 'mos/basic', authFile: authFile('mosuser', secret) });
  const err = await bad.resolve('v1').then(() => undefined, (e: unknown) => e as Error & { code: string; subject: string; hint: string });
  t.match(err, { code: 'REGISTRY_UNAUTHORIZED', subject: `http://${reg.host}/v2/mos/basic/manifests/v1`, message: /credentials were rejected/ });
  const shown = JSON.stringify({ m: err?.message, s: err?.subject, h: err?.hint, j: err });
  t.notMatch(shown, secret);
  t.notMatch(shown, Buffer.from(`mosuser:${secret}`).toString('base64'));
  const none = openRepository({ host: reg.host, name: 'mos/basic', authFile: join(dir, 'missing.json') });
  await t.rejects(none.resolve('v1'), { code: 'REGISTRY_UNAUTHORIZED', message: /authentication required/ });
});

t.test('TLS from a test CA: trusted with caFiles, REGISTRY_TLS without', { skip }, async (t) => {
  const reg = await startRegistry(t, { tls: true });
  const repo = openRepository({ host: reg.host, name: 'mos/tls', caFiles: [reg.caFile!] });
  const img = await pushImage(repo, [rnd.bytes(64)], 'v1');
  t.equal((await repo.resolve('v1')).digest, img.desc.digest);
  await t.rejects(openRepository({ host: reg.host, name: 'mos/tls' }).resolve('v1'), { code: 'REGISTRY_TLS', subject: `https://${reg.host}/v2/`, hint: /--registry-ca/ });
  const notPem = join(t.testdir({ 'x.pem': 'hello' }), 'x.pem');
  await t.rejects(openRepository({ host: reg.host, name: 'mos/tls', caFiles: [notPem], requestTimeoutMs: 20_001 }).resolve('v1'), { code: 'INPUT_INVALID', subject: notPem });
});

t.test('token auth (2.8.2 + test token server): scopes asked, tokens cached and reused', { skip }, async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  const opts: RegistryOptions = { credentials: { username: 'bob', password: 'pw' } };
  const repo = openRepository({ host: reg.host, name: 'mos/tok', ...opts });
  const img = await pushImage(repo, [rnd.bytes(64), rnd.bytes(64)], 'v1');
  t.equal((await repo.resolve('v1')).digest, img.desc.digest);
  t.strictSame(await collect(repo.fetchBlob(img.layers[0]!)), await collect(repo.fetchBlob(img.layers[0]!)));
  const other = openRepository({ host: reg.host, name: 'mos/tok2', ...opts });
  await other.pushBlob(img.layers[0]!, once(Buffer.alloc(0)), { mountFrom: 'mos/tok' });
  t.equal(await other.exists(img.layers[0]!), true, 'mounted with a token covering both repositories');
  const asked = reg.tokenRequests!;
  t.ok(asked.every((r) => r.user === 'bob'), 'credentials sent to the token realm');
  t.ok(asked.some((r) => r.scopes.join(' ') === 'repository:mos/tok:pull,push'), 'push scope asked');
  t.ok(asked.some((r) => r.scopes.join(' ') === 'repository:mos/tok2:pull,push repository:mos/tok:pull'), 'mount asks for both repositories');
  t.ok(asked.length <= 6, `tokens are cached per scope set (${asked.length} token requests for ~15 registry requests)`);
});
