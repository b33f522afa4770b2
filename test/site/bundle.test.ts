// Site bundles (issue 17), host side: site keys and manifest keys never sign each other's documents, the
// bundle's signature covers every byte, versions only go up, trust-set rotations go one step at a time with
// both keys, the overlap window ends, an expired site certificate blocks new bundles but never the one in
// force, and a manifest CA moves to a new keyset by cross-certificate. openssl checks the PKI and the
// signature independently; the CLIs refuse bad input with nothing written.
import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKeyset, createProject, createSiteBundle, createTrustRotation, publish } from '../../src/build/index.js';
import { applySiteBundle, boot, injectSiteBundle, install, siteBundleStatus, verifySiteBundle } from '../../src/machine/index.js';
import { EKU_SITE_BUNDLE, parseCaBundle, parseEnvelope, pae, signEnvelope, verifyEnvelopeSignatures, verifyInstallSignature } from '../../src/trust/index.js';
import { SITE_BUNDLE_PAYLOAD_TYPE, parseSiteBundle } from '../../src/protocol/index.js';
import { runCli } from '../support/cli.js';
import { isRoot, needs, tempDir } from '../support/env.js';
import { treeHash } from '../support/tree.js';
import { makeSystemRoot } from '../support/system.js';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildImages, manifestYaml } from '../publish/fixture.js';

const DAY = 86_400_000;

/** Two keysets (ks, ks2), a site key in each (s1, s2), a site key of a stranger keyset, a manifest project. */
async function keys(dir: string) {
  const dataHome = join(dir, 'xdg');
  for (const k of ['ks', 'ks2', 'foreign']) await createKeyset({ name: k, dataHome });
  await createProject({ keyset: 'ks', project: 's1', dataHome, site: true });
  await createProject({ keyset: 'ks2', project: 's2', dataHome, site: true });
  await createProject({ keyset: 'foreign', project: 'sx', dataHome, site: true });
  await createProject({ keyset: 'ks', project: 'proj', dataHome });
  const k = (ks: string, kind: 'site' | 'manifest', name: string) => join(dataHome, 'machine', 'trust', 'keys', ks, kind, name);
  const caOf = (ks: string) => join(dataHome, 'machine', 'trust', 'keys', ks, 'manifest-ca', 'cert.pem');
  return { dataHome, k, caOf };
}

/** A machine root trusting keyset `ks`'s CA. */
function machineRoot(dir: string, ca: string): string {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
  copyFileSync(ca, join(root, 'factory', 'secure', 'manifestCA.pem'));
  return root;
}

t.test('site keys and manifest keys', async (t) => {
  const dir = tempDir(t);
  const { dataHome, k, caOf } = await keys(dir);
  const root = machineRoot(dir, caOf('ks'));
  const siteCert = readFileSync(join(k('ks', 'site', 's1'), 'cert.pem'), 'utf8');

  await t.test('openssl sees the site EKU and the chain to the keyset CA', async (t) => {
    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(k('ks', 'site', 's1'), 'cert.pem')], { encoding: 'utf8' });
    t.match(text, EKU_SITE_BUNDLE, 'the site-bundle OID is the extended key usage');
    t.notMatch(text, /Code Signing/, 'and code signing is not');
    t.equal(execFileSync('openssl', ['verify', '-CAfile', caOf('ks'), join(k('ks', 'site', 's1'), 'cert.pem')], { encoding: 'utf8' }).trim(), `${join(k('ks', 'site', 's1'), 'cert.pem')}: OK`);
  });

  await t.test('a manifest key cannot sign a bundle: mosb refuses, and a hand-made one is refused by the machine', async (t) => {
    const r = await runCli('mosb', ['bundle', 'create', '--project', 'ks:proj', '--bundle-version', '1', join(dir, 'never.json')], { env: { XDG_DATA_HOME: dataHome } });
    t.not(r.code, 0);
    t.match(r.stderr, /manifest signing project, not a site key/);
    t.notOk(existsSync(join(dir, 'never.json')), 'nothing written');
    const payload = Buffer.from(JSON.stringify({ apiVersion: 'mosctl/v1', kind: 'SiteBundle', site: 'x', version: 1, created: new Date().toISOString(), caCertificates: [], env: {} }));
    const env = signEnvelope('application/vnd.mosctl.site-bundle.v1+json', payload, [
      { keyPem: readFileSync(join(k('ks', 'manifest', 'proj'), 'privkey.pem'), 'utf8'), certPem: readFileSync(join(k('ks', 'manifest', 'proj'), 'cert.pem'), 'utf8') },
    ]);
    writeFileSync(join(dir, 'by-manifest-key.json'), JSON.stringify(env));
    const before = treeHash(root);
    const v = await runCli('mosctl', ['--root', root, 'bundle', 'apply', join(dir, 'by-manifest-key.json')]);
    t.equal(v.code, 4, 'trust rejected');
    t.match(v.stderr, /does not allow site bundle signing \(has 1\.3\.6\.1\.5\.5\.7\.3\.3\)/);
    t.same(treeHash(root), before, 'the root is unchanged');
  });

  await t.test('a site key cannot sign an install manifest', async (t) => {
    const data = Buffer.from('{"version":1}');
    const sig = execFileSync('openssl', ['dgst', '-sha256', '-sign', join(k('ks', 'site', 's1'), 'privkey.pem')], { input: data });
    t.throws(
      () => verifyInstallSignature({ data, signature: sig, certPem: siteCert, anchors: parseCaBundle(readFileSync(caOf('ks')), 'ca') }),
      { code: 'TRUST_CERT_INVALID', message: /extended key usage does not allow code signing/ },
    );
    writeFileSync(join(dir, 'install.json'), data);
    writeFileSync(join(dir, 'install.json.signed'), sig);
    const r = await runCli('mosctl', ['--root', root, 'verify', '--cert', join(k('ks', 'site', 's1'), 'cert.pem'), '--signature', join(dir, 'install.json.signed'), join(dir, 'install.json')]);
    t.equal(r.code, 4);
    t.match(r.stderr, /code signing/);
  });

  await t.test('a bundle verifies, and openssl checks its DSSE signature independently', async (t) => {
    const out = join(dir, 'a1.json');
    await createSiteBundle({ project: 'ks:s1', version: 1, env: ['HTTPS_PROXY=http://proxy:3128'], out, dataHome });
    const env = JSON.parse(readFileSync(out, 'utf8')) as { payloadType: string; payload: string; signatures: { sig: string; cert: string }[] };
    writeFileSync(join(dir, 'pae.bin'), pae(env.payloadType, Buffer.from(env.payload, 'base64')));
    writeFileSync(join(dir, 'sig.bin'), Buffer.from(env.signatures[0]!.sig, 'base64'));
    writeFileSync(join(dir, 'pub.pem'), execFileSync('openssl', ['x509', '-pubkey', '-noout'], { input: env.signatures[0]!.cert }));
    t.equal(execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.bin'), join(dir, 'pae.bin')], { encoding: 'utf8' }).trim(), 'Verified OK');
    const v = await verifySiteBundle({ root, source: out });
    t.equal(v.site, 's1');
    t.equal(v.trustVersion, 0, 'chains to the manifest CA (trust set 0)');
    t.same(v.env, [{ name: 'HTTPS_PROXY', value: 'http://proxy:3128' }]);
  });
});

t.test('every single-byte change of a bundle is refused', async (t) => {
  const dir = tempDir(t);
  const { dataHome, caOf } = await keys(dir);
  const root = machineRoot(dir, caOf('ks'));
  const out = join(dir, 'b.json');
  await createSiteBundle({ project: 'ks:s1', version: 3, env: ['A=1', 'B=two'], provision: 'oci:/rel:1.0', provisionDevice: 'LABEL=PROV', out, dataHome });
  const bytes = readFileSync(out);
  const env = JSON.parse(bytes.toString('utf8')) as { payload: string };
  const payload = Buffer.from(env.payload, 'base64');
  let refused = 0;
  // Every byte of the signed payload, flipped, re-encoded into an otherwise intact envelope.
  for (let i = 0; i < payload.length; i++) {
    const p = Buffer.from(payload);
    p[i]! ^= 0x01;
    const file = join(dir, 'flip.json');
    writeFileSync(file, JSON.stringify({ ...env, payload: p.toString('base64') }));
    try {
      await verifySiteBundle({ root, source: file });
    } catch (e) {
      if ((e as { code?: string }).code === 'TRUST_SIGNATURE_INVALID' || (e as { code?: string }).code === 'INPUT_INVALID') refused++;
    }
  }
  t.equal(refused, payload.length, `all ${payload.length} payload flips refused`);
  // And every byte of the envelope file itself (keyid, signature, certificate chain, framing), through the
  // pure checks verifySiteBundle runs (the file and CA reads are the same every time).
  const anchors = parseCaBundle(readFileSync(caOf('ks')), 'ca');
  let fileRefused = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = Buffer.from(bytes);
    b[i]! ^= 0x01;
    try {
      const parsed = parseEnvelope(b, 'flip', SITE_BUNDLE_PAYLOAD_TYPE);
      parseSiteBundle(parsed.payload, 'flip');
      if (verifyEnvelopeSignatures(parsed, anchors, new Date(), 'flip').verified.length === 0) fileRefused++;
    } catch {
      fileRefused++;
    }
  }
  t.equal(fileRefused, bytes.length - 1, `every envelope byte flip refused but the trailing newline's (${bytes.length} bytes)`);
  t.same((await verifySiteBundle({ root, source: out })).version, 3, 'the original still verifies');
});

t.test('versions, commissioning and files', async (t) => {
  const dir = tempDir(t);
  const { dataHome, caOf } = await keys(dir);
  const root = machineRoot(dir, caOf('ks'));
  const transport = join(dir, 'transport.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'transport.key'), '-out', transport, '-subj', '/CN=site transport CA', '-days', '30'], { stdio: 'ignore' });
  writeFileSync(join(dir, 'registries.conf'), '[[registry]]\nprefix = "zothub.io"\nlocation = "zothub.io"\n[[registry.mirror]]\nlocation = "mirror.site.test:5000"\n');
  writeFileSync(join(dir, 'auth.json'), JSON.stringify({ auths: { 'mirror.site.test:5000': { auth: Buffer.from('u:p').toString('base64') } } }));
  const make = (v: number, extra: Partial<Parameters<typeof createSiteBundle>[0]> = {}) =>
    createSiteBundle({ project: 'ks:s1', version: v, out: join(dir, `v${v}.json`), dataHome, ...extra }).then((r) => r.out);
  const v2 = await make(2, { caFiles: [transport], env: ['NO_PROXY=localhost', 'HTTPS_PROXY=http://p:3128'], registriesConf: join(dir, 'registries.conf'), authFile: join(dir, 'auth.json') });
  const newRoot = join(dir, 'newroot');
  mkdirSync(newRoot);

  const first = await injectSiteBundle({ root, candidates: [join(dir, 'absent.json'), v2], dest: newRoot });
  t.ok(first.accepted, 'an uncommissioned machine takes the first candidate that verifies');
  t.same(first.ignored.map((i) => i.source), [join(dir, 'absent.json')]);
  t.equal(readFileSync(join(newRoot, 'usr/local/share/ca-certificates/mosctl-site/s1-1.crt'), 'utf8').trim(), readFileSync(transport, 'utf8').trim(), 'the transport CA is in the trust-store source dir');
  t.equal(execFileSync('openssl', ['verify', '-CAfile', join(newRoot, 'etc/mosctl/site/ca.pem'), transport], { encoding: 'utf8' }).trim(), `${transport}: OK`);
  t.equal(readFileSync(join(newRoot, 'etc/mosctl/site/env'), 'utf8'), 'HTTPS_PROXY="http://p:3128"\nNO_PROXY="localhost"\n');
  t.match(readFileSync(join(newRoot, 'etc/containers/registries.conf.d/50-mosctl-site.conf'), 'utf8'), /mirror\.site\.test/);
  t.equal((await import('node:fs')).statSync(join(newRoot, 'etc/mosctl/site/auth.json')).mode & 0o777, 0o600, 'credentials are 0600');

  const v1 = await make(1);
  const v2other = await make(2, { env: ['OTHER=1'] });
  const later = await injectSiteBundle({ root, candidates: [v1], dest: newRoot });
  t.notOk(later.accepted);
  t.match(later.ignored[0]?.reason, /already commissioned with site s1 version 2/, 'a bundle that appears after commissioning is ignored');
  t.match((await siteBundleStatus({ root })).state?.ignored.at(-1), { source: v1 }, 'and logged in the state');
  await t.rejects(applySiteBundle({ root, source: v1 }), { code: 'SITE_BUNDLE_OLDER', message: /version 1 is older than version 2/ });
  await t.rejects(applySiteBundle({ root, source: v2other }), { code: 'SITE_BUNDLE_OLDER', message: /other content/ });

  const v3 = await make(3, { env: ['ONLY=3'] });
  const applied = await applySiteBundle({ root, source: v3, dest: newRoot });
  t.ok(applied.changed);
  t.notOk(existsSync(join(newRoot, 'etc/containers/registries.conf.d/50-mosctl-site.conf')), 'a file the newer bundle no longer carries is removed');
  t.notOk(existsSync(join(newRoot, 'usr/local/share/ca-certificates/mosctl-site/s1-1.crt')));
  t.equal(readFileSync(join(newRoot, 'etc/mosctl/site/env'), 'utf8'), 'ONLY="3"\n');
  const again = await applySiteBundle({ root, source: v3 });
  t.notOk(again.changed, 'the same bundle again changes nothing');

  await t.test('bad input: one error, nothing written', async (t) => {
    const before = treeHash(root);
    const cases: [string[], RegExp][] = [
      [['bundle', 'apply', '/dev/zero'], /not a regular file/],
      [['bundle', 'apply', join(dir, 'registries.conf')], /not a JSON DSSE envelope/],
      [['bundle', 'apply', 'oci:/nonexistent/layout:tag'], /./],
      [['bundle', 'inject', '--dest', join(dir, 'no-such-dir')], /no such file or directory/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli('mosctl', ['--root', root, ...args]);
      t.not(r.code, 0, args.join(' '));
      t.match(r.stderr, msg);
      t.equal(r.stderr.split('\n').filter((l) => l.startsWith('mosctl: ')).length, 1, 'one error line');
    }
    t.same(treeHash(root), before, 'the root is unchanged');
    const mosb: [string[], RegExp][] = [
      [['--env', '1BAD=x'], /not an environment variable name/],
      [['--env', 'NOEQUALS'], /want KEY=VALUE/],
      [['--provision-device', 'LABEL=x'], /--provision-device needs --provision/],
      [['--provision', 'oci:/r:1', '--provision-device', '/dev/sda'], /must be LABEL=NAME/],
      [['--ca', '/dev/zero'], /not a regular file/],
      [['--auth', join(dir, 'registries.conf')], /is not JSON/],
      [['--registries-conf', join(dir, 'auth.json')], /not valid TOML|registry/],
      [['--bundle-version', '0'], /--bundle-version/],
    ];
    for (const [args, msg] of mosb) {
      const out = join(dir, 'refused.json');
      const full = ['bundle', 'create', '--project', 'ks:s1', ...(args.includes('--bundle-version') ? [] : ['--bundle-version', '9']), ...args, out];
      const r = await runCli('mosb', full, { env: { XDG_DATA_HOME: dataHome } });
      t.not(r.code, 0, args.join(' '));
      t.match(r.stderr, msg, args.join(' '));
      t.notOk(existsSync(out), 'no bundle written');
    }
  });
});

t.test('trust-set rotations: one step at a time, both keys, an overlap window', async (t) => {
  const dir = tempDir(t);
  const { dataHome, caOf } = await keys(dir);
  await createKeyset({ name: 'ks3', dataHome });
  await createProject({ keyset: 'ks3', project: 's3', dataHome, site: true });
  const root = machineRoot(dir, caOf('ks'));
  const now = new Date();
  const r1 = join(dir, 'r1.json');
  const r2 = join(dir, 'r2.json');
  await createTrustRotation({ from: 'ks:s1', to: 'ks2:s2', version: 1, overlapDays: 10, out: r1, dataHome, now });
  await createTrustRotation({ from: 'ks2:s2', to: 'ks3:s3', version: 2, overlapDays: 10, out: r2, dataHome, now });

  await t.test('a skipped step is refused', async (t) => {
    const b = join(dir, 'skip.json');
    await createSiteBundle({ project: 'ks3:s3', version: 1, trustFiles: [r2], out: b, dataHome });
    await t.rejects(verifySiteBundle({ root, source: b }), { code: 'TRUST_BUNDLE_INVALID', message: /version 2 cannot follow version 0/ });
  });

  await t.test('a forged step is refused: signed by the new key alone, or by a stranger', async (t) => {
    const forged = join(dir, 'forged.json');
    await createTrustRotation({ from: 'foreign:sx', to: 'ks2:s2', version: 1, overlapDays: 10, out: forged, dataHome, now });
    const b = join(dir, 'forged-bundle.json');
    await createSiteBundle({ project: 'ks2:s2', version: 1, trustFiles: [forged], out: b, dataHome });
    await t.rejects(verifySiteBundle({ root, source: b }), { code: 'TRUST_SIGNATURE_INVALID', message: /not signed by a site key of the current set \(version 0\)/ });
    const env = JSON.parse(readFileSync(r1, 'utf8')) as { signatures: unknown[] };
    const newOnly = join(dir, 'new-only.json');
    writeFileSync(newOnly, JSON.stringify({ ...env, signatures: env.signatures.slice(1) }));
    const b2 = join(dir, 'new-only-bundle.json');
    await createSiteBundle({ project: 'ks2:s2', version: 1, trustFiles: [newOnly], out: b2, dataHome });
    await t.rejects(verifySiteBundle({ root, source: b2 }), { code: 'TRUST_SIGNATURE_INVALID', message: /current set/ });
    const b3 = join(dir, 'no-rotation.json');
    await createSiteBundle({ project: 'ks2:s2', version: 1, out: b3, dataHome });
    await t.rejects(verifySiteBundle({ root, source: b3 }), { message: /no signature verifies as a site bundle/ }, 'the next set signs nothing before the rotation');
  });

  await t.test('0 -> 1 -> 2 accepted; the old set verifies within the overlap, then is dropped and recorded', async (t) => {
    const b1 = join(dir, 'b1.json');
    await createSiteBundle({ project: 'ks2:s2', version: 1, trustFiles: [r1], out: b1, dataHome });
    const a1 = await applySiteBundle({ root, source: b1, now });
    t.equal(a1.trustVersion, 1);
    const old = join(dir, 'old-signer.json');
    await createSiteBundle({ project: 'ks:s1', version: 2, out: old, dataHome });
    t.equal((await verifySiteBundle({ root, source: old, now: new Date(now.getTime() + 5 * DAY) })).trustVersion, 0, 'set 0 still signs within the 10-day overlap');
    await t.rejects(verifySiteBundle({ root, source: old, now: new Date(now.getTime() + 11 * DAY) }), { message: /no signature verifies/ }, 'and not after it');
    const b2 = join(dir, 'b2.json');
    await createSiteBundle({ project: 'ks3:s3', version: 2, trustFiles: [r1, r2], out: b2, dataHome });
    const later = new Date(now.getTime() + 12 * DAY);
    const a2 = await applySiteBundle({ root, source: b2, now: later });
    t.equal(a2.trustVersion, 2, 'rotation 1 was already recorded, rotation 2 is taken');
    const st = await siteBundleStatus({ root });
    t.same(st.state?.rotations.map((r) => r.version), [1, 2]);
    t.same(st.state?.dropped.map((d) => d.version), [0, 1], 'sets 0 and 1 recorded as dropped: both windows (10 days from their rotation files) ended');
    t.ok(existsSync(join(root, 'config/site/trust/2.json')));
    const inject = await injectSiteBundle({ root, candidates: [] });
    t.equal(inject.bundle?.trustVersion, 2, 'the recorded chain replays from the manifest CA at boot');
  });
});

t.test('an expired site certificate blocks new bundles, never the one in force', async (t) => {
  const dir = tempDir(t);
  const { dataHome, caOf } = await keys(dir);
  const root = machineRoot(dir, caOf('ks'));
  const b = join(dir, 'b.json');
  await createSiteBundle({ project: 'ks:s1', version: 1, out: b, dataHome });
  await applySiteBundle({ root, source: b });
  const past = new Date(Date.now() + 11 * 365 * DAY); // site certificates are valid for 10 years
  const nb = join(dir, 'nb.json');
  await createSiteBundle({ project: 'ks:s1', version: 2, out: nb, dataHome });
  await t.rejects(applySiteBundle({ root, source: nb, now: past }), { code: 'TRUST_CERT_EXPIRED' });
  mkdirSync(join(dir, 'newroot'));
  const boot = await injectSiteBundle({ root, candidates: [], now: past, dest: join(dir, 'newroot') });
  t.equal(boot.bundle?.version, 1, 'the recorded bundle still goes into the new root');
});

t.test('manifest CA rotation: a machine trusting the old CA installs what the new keyset signs', { skip: needs({ root: false, programs: ['mksquashfs', 'veritysetup', 'openssl'] }) }, async (t) => {
  const dir = tempDir(t);
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'old', dataHome });
  await createKeyset({ name: 'new', dataHome });
  const keysDir = join(dataHome, 'machine', 'trust', 'keys');
  const r = await runCli('mosb', ['keyset', 'rotate', 'old', 'new'], { env: { XDG_DATA_HOME: dataHome } });
  t.equal(r.code, 0, r.stderr);
  const again = await runCli('mosb', ['keyset', 'rotate', 'old', 'new'], { env: { XDG_DATA_HOME: dataHome } });
  t.equal(again.code, 8, 'an existing cross-certificate is not replaced');
  await createProject({ keyset: 'new', project: 'p', dataHome });
  const cert = join(keysDir, 'new', 'manifest', 'p', 'cert.pem');
  t.equal(readFileSync(cert, 'utf8').match(/BEGIN CERTIFICATE/g)?.length, 2, 'the project certificate carries the cross-certificate after its leaf');
  writeFileSync(join(dir, 'leaf.pem'), readFileSync(cert, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
  writeFileSync(join(dir, 'cross.pem'), readFileSync(join(keysDir, 'new', 'manifest-ca', 'cross.pem')));
  t.match(execFileSync('openssl', ['verify', '-CAfile', join(keysDir, 'old', 'manifest-ca', 'cert.pem'), '-untrusted', join(dir, 'cross.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' }), /OK/, 'openssl: leaf -> cross -> old CA');
  t.match(execFileSync('openssl', ['verify', '-CAfile', join(keysDir, 'new', 'manifest-ca', 'cert.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' }), /OK/, 'openssl: leaf -> new CA');
  const images = await buildImages(dir);
  writeFileSync(join(dir, 'manifest.yaml'), manifestYaml(images));
  const repo = join(dir, 'rel');
  await publish({ manifestFile: join(dir, 'manifest.yaml'), repo: `oci:${repo}`, name: 'machine/install:1.0', project: 'new:p', dataHome, skipBootkit: true });
  const roots: Record<string, string> = {};
  for (const [name, ca] of [['old', join(keysDir, 'old', 'manifest-ca', 'cert.pem')], ['new', join(keysDir, 'new', 'manifest-ca', 'cert.pem')]] as const) {
    const root = (roots[name] = makeSystemRoot(t));
    mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
    copyFileSync(ca, join(root, 'factory', 'secure', 'manifestCA.pem'));
    const res = await install({ root, source: `oci:${repo}:1.0` });
    t.equal(res.generation, 1, `a machine trusting the ${name} CA installs it`);
  }
  if (isRoot) {
    // mosctl boot on a machine with no bundle that finds one on its ESP takes it (the initrd had none to give).
    const site = join(dir, 'site.json');
    await createProject({ keyset: 'old', project: 'site', dataHome, site: true });
    await createSiteBundle({ project: 'old:site', version: 1, env: ['LATER=1'], out: site, dataHome });
    mkdirSync(join(roots['old']!, 'boot/efi/EFI/mosctl'), { recursive: true });
    copyFileSync(site, join(roots['old']!, 'boot/efi/EFI/mosctl/site-bundle.json'));
    const b = await boot({ root: roots['old']! });
    t.equal(b.failed, 0);
    t.equal(readFileSync(join(roots['old']!, 'etc/mosctl/site/env'), 'utf8'), 'LATER="1"\n', 'boot took the ESP bundle and wrote its files');
    t.equal((await siteBundleStatus({ root: roots['old']! })).bundle?.version, 1);
  }
  const foreign = join(dir, 'root-foreign');
  await createKeyset({ name: 'stranger', dataHome });
  mkdirSync(join(foreign, 'factory', 'secure'), { recursive: true });
  copyFileSync(join(keysDir, 'stranger', 'manifest-ca', 'cert.pem'), join(foreign, 'factory', 'secure', 'manifestCA.pem'));
  await t.rejects(install({ root: foreign, source: `oci:${repo}:1.0` }), { code: 'TRUST_CERT_UNTRUSTED' });
  t.notOk(existsSync(join(foreign, 'config')), 'and writes no config');
});

t.test('a command-line URL: ${mac} expanded, waited for with backoff, last in precedence, never once commissioned', async (t) => {
  const dir = tempDir(t);
  const { dataHome, caOf } = await keys(dir);
  const root = machineRoot(dir, caOf('ks'));
  const sysfs = join(dir, 'sys');
  mkdirSync(join(sysfs, 'class/net/lo'), { recursive: true });
  writeFileSync(join(sysfs, 'class/net/lo/address'), '00:00:00:00:00:00\n');
  mkdirSync(join(sysfs, 'class/net/enp0s3/device'), { recursive: true });
  writeFileSync(join(sysfs, 'class/net/enp0s3/address'), '52:54:00:AB:CD:EF\n');
  mkdirSync(join(sysfs, 'class/net/docker0'), { recursive: true });
  writeFileSync(join(sysfs, 'class/net/docker0/address'), '02:42:00:00:00:01\n');
  const bundle = join(dir, 'b.json');
  await createSiteBundle({ project: 'ks:s1', version: 1, env: ['FROM=url'], out: bundle, dataHome });
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (requests.length <= 2) return void res.writeHead(503).end('not yet');
    if (req.url !== '/site/52:54:00:ab:cd:ef.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(bundle));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/site/\${mac}.json`;

  const noSerial = await injectSiteBundle({ root, candidates: [url.replace('${mac}', '${serial}')], sysfs, networkWaitMs: 1000 });
  t.match(noSerial.ignored[0]?.reason, /this machine has no serial/);
  t.equal(noSerial.bundle, null);
  const unknown = await injectSiteBundle({ root, candidates: [url.replace('${mac}', '${hostname}')], sysfs, networkWaitMs: 1000 });
  t.match(unknown.ignored[0]?.reason, /unknown variable \$\{hostname\}/);
  t.equal(requests.length, 0, 'a URL that cannot be expanded is never requested');

  const local = join(dir, 'local.json');
  await createSiteBundle({ project: 'ks:s1', version: 1, env: ['FROM=media'], out: local, dataHome });
  const other = join(dir, 'other-root');
  mkdirSync(join(other, 'factory', 'secure'), { recursive: true });
  copyFileSync(caOf('ks'), join(other, 'factory/secure/manifestCA.pem'));
  const fromMedia = await injectSiteBundle({ root: other, candidates: [local, url], sysfs });
  t.same(fromMedia.bundle?.env, [{ name: 'FROM', value: 'media' }], 'a bundle on local media comes before the command line');
  t.equal(requests.length, 0, 'and the URL is not fetched');

  const waits: string[] = [];
  const log = { debug() {}, info() {}, warn: (m: string) => void waits.push(m), error() {} };
  const r = await injectSiteBundle({ root, candidates: [url], sysfs, networkWaitMs: 20_000, log: log as never });
  t.same(r.bundle?.env, [{ name: 'FROM', value: 'url' }]);
  t.same(requests, ['/site/52:54:00:ab:cd:ef.json', '/site/52:54:00:ab:cd:ef.json', '/site/52:54:00:ab:cd:ef.json'], 'the MAC of the first device interface, lower case; two 503s retried');
  t.equal(waits.length, 2);
  t.match(waits[0], /waiting for the site bundle at http:\/\/127\.0\.0\.1:\d+\/site\/52:54:00:ab:cd:ef\.json: answered HTTP 503; attempt 2 in \d/);

  const later = await injectSiteBundle({ root, candidates: [url], sysfs });
  t.equal(requests.length, 3, 'a commissioned machine does not even fetch it');
  t.match(later.ignored[0]?.reason, /already commissioned/);
  const again = await injectSiteBundle({ root, candidates: [url], sysfs });
  t.equal(again.ignored.length, 1);
  t.equal((await siteBundleStatus({ root })).state?.ignored.length, 1, 'the same ignored input is logged once, not at every boot');
});
