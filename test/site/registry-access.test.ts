// Storage beyond plain HTTPS (issue 17): a site bundle's transport CA and registry credentials let mosctl
// install from a registry that needs both (TLS from the site's own CA, htpasswd Basic auth), with no
// registry flag on the command line. The bundle's files go into this machine's /etc (what the initrd does
// for the new root), so the test skips when /etc/mosctl/site is already there and removes what it wrote.
import { t } from 'tap';
import { existsSync, mkdirSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKeyset, createProject, createSiteBundle } from '../../src/build/index.js';
import { runCli } from '../support/cli.js';
import { isRoot, needs, tempDir } from '../support/env.js';
import { makeSystemRoot } from '../support/system.js';
import { startRegistry } from '../support/registry.js';
import { buildImages, manifestYaml } from '../publish/fixture.js';

const SITE_ETC = '/etc/mosctl/site';
const ANCHORS = '/usr/local/share/ca-certificates/mosctl-site';
const skip = needs({ root: true, programs: ['docker-registry', 'htpasswd', 'openssl', 'mksquashfs', 'veritysetup'] })
  || (isRoot && (existsSync(SITE_ETC) || existsSync(ANCHORS)) ? `${SITE_ETC} or ${ANCHORS} exists on this machine: not overwriting it` : false);

t.test('a bundle\'s CA and credentials reach a TLS + Basic-auth registry', { skip }, async (t) => {
  const dir = tempDir(t);
  const reg = await startRegistry(t, { tls: true, auth: 'basic' });
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'ks', dataHome });
  await createProject({ keyset: 'ks', project: 'p', dataHome });
  await createProject({ keyset: 'ks', project: 'site', dataHome, site: true });
  const env = { XDG_DATA_HOME: dataHome };
  const images = await buildImages(dir);
  writeFileSync(join(dir, 'manifest.yaml'), manifestYaml(images));
  const pushAuth = join(dir, 'push-auth.json');
  writeFileSync(pushAuth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user!.username}:${reg.user!.password}`).toString('base64') } } }));
  const pub = await runCli('mosb', ['manifest', 'publish', '--repo', reg.host, '--name', 'machine/install:1.0', '--project', 'ks:p', '--skip-bootkit', '--registry-ca', reg.caFile!, '--authfile', pushAuth, join(dir, 'manifest.yaml')], { env, cwd: dir });
  t.equal(pub.code, 0, pub.stderr);

  const root = makeSystemRoot(t);
  mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
  copyFileSync(join(dataHome, 'machine/trust/keys/ks/manifest-ca/cert.pem'), join(root, 'factory/secure/manifestCA.pem'));
  // No site files yet: TLS from an unknown CA, then (with --registry-ca) no credentials.
  const noSite = await runCli('mosctl', ['--root', root, 'install', `${reg.host}/machine/install:1.0`]);
  t.equal(noSite.code, 7);
  t.match(noSite.stderr, /certificate|TLS/);
  const noAuth = await runCli('mosctl', ['--root', root, 'install', '--registry-ca', reg.caFile!, `${reg.host}/machine/install:1.0`]);
  t.equal(noAuth.code, 7, noAuth.stderr);
  t.match(noAuth.stderr, /authentication required/);

  const bundle = join(dir, 'site.json');
  await createSiteBundle({ project: 'ks:site', version: 1, caFiles: [reg.caFile!], authFile: pushAuth, out: bundle, dataHome });
  t.teardown(() => {
    rmSync(SITE_ETC, { recursive: true, force: true });
    rmSync(ANCHORS, { recursive: true, force: true });
  });
  const applied = await runCli('mosctl', ['--root', root, 'bundle', 'apply', '--dest', '/', bundle]);
  t.equal(applied.code, 0, applied.stderr);
  t.ok(existsSync(join(SITE_ETC, 'ca.pem')) && existsSync(join(SITE_ETC, 'auth.json')));

  const installed = await runCli('mosctl', ['--root', root, 'install', `${reg.host}/machine/install:1.0`]);
  t.equal(installed.code, 0, `installed with the site's CA and credentials alone: ${installed.stderr}`);
  t.notMatch(installed.stderr + installed.stdout, reg.user!.password, 'the password appears nowhere');
  const st = await runCli('mosctl', ['--root', root, 'status', '--json']);
  t.equal((st.json as { generation?: { number?: number } }).generation?.number, 1);
});
