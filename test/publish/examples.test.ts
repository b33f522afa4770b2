import { t } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageManifest } from '../../src/oci/index.js';
import { createKeyset, createProject } from '../../src/build/index.js';
import { childEnv, runCli, withoutTapHook } from '../support/cli.js';
import { needs } from '../support/env.js';
import { startRegistry } from '../support/registry.js';
import { PROGRAMS, catalog } from './fixture.js';

const skip = needs({ programs: [...PROGRAMS, 'busybox'] });
const top = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLES = ['hostfs-only', 'hostfs-fsonly', 'hostfs-container', 'partial-update'] as const;

t.test('the four examples build and publish to a fresh registry with the README commands', { skip }, async (t) => {
  const dir = t.testdir({});
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'snakeoil', dataHome });
  await createProject({ keyset: 'snakeoil', project: 'default', dataHome });
  const reg = await startRegistry(t);
  // The examples name oci:build/oci:TAG, relative to where publish runs (as in mos).
  mkdirSync(join(dir, 'build'));
  const built = execFileSync(...withoutTapHook(join(top, 'manifests', 'build-images.sh'), [join(dir, 'build', 'oci')]), { encoding: 'utf8', env: childEnv() });
  t.match(built, /^hostfs-1\.0 sha256:[0-9a-f]{64}$/m);
  t.match(built, /^tools-1\.1 sha256:[0-9a-f]{64}$/m);

  const env = { XDG_DATA_HOME: dataHome };
  for (const name of EXAMPLES) {
    const args = ['manifest', 'publish', '--json', '--repo', reg.host, '--name', `examples/${name}:1.0.0`, '--project', 'snakeoil:default', '--skip-bootkit', join(top, 'manifests', `${name}.yaml`)];
    const r = await runCli('mosb', args, { cwd: dir, env });
    t.equal(r.code, 0, `${name} publishes${r.code !== 0 ? `: ${r.stderr}` : ''}`);
    t.match(r.json, { reference: `${reg.host}/examples/${name}:1.0.0`, digest: /^sha256:[0-9a-f]{64}$/, targets: Array }, `${name}: --json prints the result`);
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/examples/${name}:1.0.0`], { encoding: 'utf8' })) as ImageManifest;
    t.equal(raw.artifactType, 'application/vnd.machine.install', `${name}: skopeo reads the install artifact`);
  }
  t.strictSame((await catalog(reg.host)).sort(), [...EXAMPLES.map((n) => `examples/${n}`), 'mos'].sort());

  // The container example's entrypoint is a long-running busybox httpd.
  const web = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${join(dir, 'build', 'oci')}:web-1.0`], { encoding: 'utf8' })) as { config: { Entrypoint: string[] } };
  t.strictSame(web.config.Entrypoint, ['/usr/sbin/httpd', '-f', '-p', '8080', '-h', '/www']);

  // Plain text output: the reference, then the digest.
  const text = await runCli('mosb', ['manifest', 'publish', '--repo', reg.host, '--name', 'examples/hostfs-only:1.0.0', '--project', 'snakeoil:default', join(top, 'manifests', 'hostfs-only.yaml')], { cwd: dir, env });
  t.equal(text.code, 0);
  t.match(text.stdout, new RegExp(`^${reg.host.replace(/\./g, '\\.')}/examples/hostfs-only:1\\.0\\.0\\nsha256:[0-9a-f]{64}\\n$`));
});

t.test('CLI errors: usage and a missing project, mapped to exit codes', { skip }, async (t) => {
  const dir = t.testdir({});
  const yaml = join(top, 'manifests', 'hostfs-only.yaml');
  const noName = await runCli('mosb', ['manifest', 'publish', '--repo', '127.0.0.1:1', '--project', 'a:b', yaml], { cwd: dir });
  t.equal(noName.code, 2);
  t.match(noName.stderr, /^mosb: --name: is required/m);
  const noProject = await runCli('mosb', ['manifest', 'publish', '--repo', '127.0.0.1:1', '--name', 'x/y:1', '--product', 'nokeys:default', yaml], { cwd: dir, env: { XDG_DATA_HOME: dir } });
  t.equal(noProject.code, 6, 'TRUST_KEYSET_UNKNOWN is "not found"');
  t.match(noProject.stderr, /project nokeys:default has no signing key\nhint: create it with mosb project add nokeys:default/);
});
