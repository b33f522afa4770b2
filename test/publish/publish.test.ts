import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OCI_INDEX, OCI_MANIFEST, fallbackTag, openLayout, type ImageIndex, type ImageManifest } from '../../src/oci/index.js';
import { publish, type PublishResult } from '../../src/build/index.js';
import { CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE, listReferrers } from '../../src/protocol/index.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { startRegistry } from '../support/registry.js';
import { PROGRAMS, sharedImages, curl, curlJson, sharedProject, manifestYaml, type Images } from './fixture.js';

const skip = needs({ programs: PROGRAMS });
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };

// install.json as mos's json.Marshal writes it, spelled out here independently of the serializer.
function expectedInstallJson(images: Images): string {
  const target = (name: string, version: string, type: string, net: string, d: { digest: string; size: number }) =>
    `{"service_name":"${name}","version":"${version}","service_type":"${type}","network":{"type":"${net}","ipv4":"","ipv6":"","ports":null},"nsgroup":"","digest":"${d.digest}","storage":null,"size":${d.size}}`;
  return (
    '{"version":1,"product":"de6c82c5-2e01-4c92-949b-a6545d30fc06","storage":null,"targets":[' +
    target('hostfs', '1.0.0', 'hostfs', 'host', images.hostfs) + ',' + target('data', '2.0.0', 'fs-only', 'none', images.app) +
    '],"update_type":"complete"}'
  );
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

t.test('publish to docker-registry, read back with curl, skopeo and openssl', { skip }, async (t) => {
  const dir = t.testdir({});
  const [images, project, reg] = await Promise.all([sharedImages(), sharedProject(), startRegistry(t)]);
  const yaml = manifestYaml(images);
  const opts = { manifestFile: 'manifest.yaml', yaml, repo: reg.host, name: 'machine/install:1.0.0', project: 'snakeoil:default', dataHome: project.dataHome };
  const res = await publish(opts);
  const base = `http://${reg.host}/v2`;

  t.equal(res.reference, `${reg.host}/machine/install:1.0.0`);
  t.strictSame(res.targets, [
    { name: 'hostfs', digest: images.hostfs.digest, size: images.hostfs.size },
    { name: 'data', digest: images.app.digest, size: images.app.size },
  ]);

  // The install artifact, exactly in mos's shape.
  const rawManifest = await curl(`${base}/machine/install/manifests/1.0.0`, OCI_MANIFEST);
  t.equal('sha256:' + createHash('sha256').update(rawManifest).digest('hex'), res.digest, 'the tag names the reported digest');
  const manifest = JSON.parse(rawManifest.toString()) as ImageManifest;
  t.equal(manifest.mediaType, OCI_MANIFEST);
  t.equal(manifest.artifactType, 'application/vnd.machine.install');
  t.strictSame(manifest.config, EMPTY, 'empty config descriptor');
  t.equal(manifest.layers.length, 1);
  t.equal(manifest.layers[0]!.mediaType, 'application/vnd.machine.install');
  t.strictSame(manifest.layers[0]!.annotations, { 'org.opencontainers.image.title': 'index.json' });
  t.strictSame(manifest.annotations, { 'org.opencontainers.image.created': '1970-01-01T00:00:00Z' });
  t.equal((await curl(`${base}/machine/install/blobs/${EMPTY.digest}`)).toString(), '{}', 'the empty config blob was pushed');

  // install.json: the exact compact bytes, what was signed.
  const installJson = await curl(`${base}/machine/install/blobs/${manifest.layers[0]!.digest}`);
  t.equal(installJson.toString(), expectedInstallJson(images), 'install.json is mos compact form');
  t.equal(createHash('sha256').update(installJson).digest('hex'), res.manifest);

  // Referrers through the sha256-<hex> fallback tag (distribution 2.8 has no referrers API).
  const index = await curlJson<ImageIndex>(`${base}/machine/install/manifests/${fallbackTag(res.digest)}`, OCI_INDEX);
  t.strictSame(index.manifests.map((d) => d.artifactType).sort(), [CERT_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE]);
  const payload = async (type: string, title: string): Promise<Buffer> => {
    const entry = index.manifests.find((d) => d.artifactType === type)!;
    const m = await curlJson<ImageManifest>(`${base}/machine/install/manifests/${entry.digest}`, OCI_MANIFEST);
    t.equal(m.artifactType, type);
    t.strictSame(m.subject, { mediaType: OCI_MANIFEST, digest: res.digest, size: rawManifest.length }, `${title}: subject is the install manifest`);
    t.strictSame(m.config, EMPTY);
    t.equal(m.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
    t.strictSame(m.layers[0]!.annotations, { 'org.opencontainers.image.title': title });
    return curl(`${base}/machine/install/blobs/${m.layers[0]!.digest}`);
  };
  t.equal(index.manifests.find((d) => d.artifactType === CERT_ARTIFACT_TYPE)!.digest, res.cert);
  const cert = await payload(CERT_ARTIFACT_TYPE, 'cert.pem');
  const sig = await payload(SIGNATURE_ARTIFACT_TYPE, 'install.json.signed');
  t.strictSame(cert, readFileSync(project.paths.cert), 'the certificate is the project cert');

  // openssl alone verifies the fetched bytes: signature with the cert's key, cert against the keyset CA.
  writeFileSync(join(dir, 'install.json'), installJson);
  writeFileSync(join(dir, 'install.json.signed'), sig);
  writeFileSync(join(dir, 'cert.pem'), cert);
  writeFileSync(join(dir, 'pub.pem'), openssl(['x509', '-pubkey', '-noout', '-in', join(dir, 'cert.pem')]));
  t.match(openssl(['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'install.json.signed'), join(dir, 'install.json')]), /Verified OK/);
  t.match(openssl(['verify', '-CAfile', project.paths.caCert, join(dir, 'cert.pem')]), /OK/);

  // Target images: skopeo reads each from <repo>/mos:<hex>.
  for (const img of [images.hostfs, images.app]) {
    const out = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/mos:${img.digest.slice(7)}`], { encoding: 'utf8' })) as { Digest: string };
    t.equal(out.Digest, img.digest, `skopeo reads mos:${img.digest.slice(7, 19)}`);
  }
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/machine/install:1.0.0`], { encoding: 'utf8' })) as ImageManifest;
  t.equal(raw.artifactType, 'application/vnd.machine.install', 'skopeo reads the install artifact');

  // Publishing again changes nothing: same digest, no second certificate or signature.
  const again = await publish(opts);
  t.strictSame(again, res, 'idempotent');
  const index2 = await curlJson<ImageIndex>(`${base}/machine/install/manifests/${fallbackTag(res.digest)}`, OCI_INDEX);
  t.equal(index2.manifests.length, 2, 'no duplicate referrers');
  const tags = await curlJson<{ tags: string[] }>(`${base}/machine/install/tags/list`);
  t.strictSame(tags.tags.sort(), ['1.0.0', fallbackTag(res.digest)].sort());

  // A later `created` is a new artifact (with its own referrers) under the same tag.
  const later = await publish({ ...opts, created: new Date('2025-01-02T03:04:05.678Z') });
  t.not(later.digest, res.digest);
  const m2 = await curlJson<ImageManifest>(`${base}/machine/install/manifests/1.0.0`, OCI_MANIFEST);
  t.strictSame(m2.annotations, { 'org.opencontainers.image.created': '2025-01-02T03:04:05Z' }, 'RFC 3339');
});

t.test('ECDSA signer from --cert/--key: re-publishing reuses the signature', { skip }, async (t) => {
  const [images, pki, reg] = await Promise.all([sharedImages(), mintPki(t, { leafKey: 'ec256' }), startRegistry(t)]);
  const opts = { manifestFile: 'm.yaml', yaml: manifestYaml(images), repo: `docker://${reg.host}`, name: 'ec/install:2', cert: pki.leafCert, key: pki.leafKey };
  const first: PublishResult = await publish(opts);
  const second = await publish(opts);
  t.equal(second.digest, first.digest);
  t.equal(second.signature, first.signature, 'the verifying signature already there is reused');
  const index = await curlJson<ImageIndex>(`http://${reg.host}/v2/ec/install/manifests/${fallbackTag(first.digest)}`, OCI_INDEX);
  t.equal(index.manifests.length, 2);
});

t.test('publish to an oci: layout: one layout holds images, artifact and referrers', { skip }, async (t) => {
  const dir = t.testdir({});
  const [images, project] = await Promise.all([sharedImages(), sharedProject()]);
  const out = join(dir, 'published');
  const opts = { manifestFile: 'm.yaml', yaml: manifestYaml(images), repo: `oci:${out}`, name: 'machine/install:1.0.0', project: 'snakeoil:default', dataHome: project.dataHome };
  const res = await publish(opts);
  t.equal(res.reference, `oci:${out}:1.0.0`);
  for (const img of [images.hostfs, images.app]) {
    const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${out}:${img.digest.slice(7)}`], { encoding: 'utf8' })) as { Digest: string };
    t.equal(info.Digest, img.digest, 'skopeo reads the image tagged by its hex');
  }
  const store = await openLayout(out);
  const subject = await store.resolve('1.0.0');
  t.equal(subject.digest, res.digest);
  const certs = await listReferrers(store, subject, CERT_ARTIFACT_TYPE);
  const sigs = await listReferrers(store, subject, SIGNATURE_ARTIFACT_TYPE);
  t.strictSame(certs.map((d) => d.digest), [res.cert]);
  t.strictSame(sigs.map((d) => d.digest), [res.signature]);
  const sigManifest = JSON.parse(Buffer.from(await store.fetchBytes(sigs[0]!)).toString()) as ImageManifest;
  t.equal(sigManifest.subject?.digest, res.digest);

  await publish(opts);
  t.equal((await listReferrers(store, subject)).length, 2, 'publishing again adds no referrer');
});
