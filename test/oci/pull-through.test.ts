import { t } from 'tap';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { install } from '../../src/machine/index.js';
import { runCli } from '../support/cli.js';
import { needs, tempDir } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { startRegistry, type Registry } from '../support/registry.js';
import { T, buildImages, makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';

// Fleet issue, pull-through: Debian's docker-registry in proxy mode (`proxy: remoteurl`) in front of an
// upstream docker-registry, both on 127.0.0.1, named as a mirror in registries.conf. A machine installs
// through it; with the proxy down machines fall back to the upstream; with the upstream down a machine
// still installs from what the proxy cached.
const skip = needs({ root: true, programs: ['docker-registry', 'mksquashfs'] });

/** Bytes of the blobs a docker-registry holds on disk (its filesystem storage driver). */
function storedBlobBytes(r: Registry): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === 'data') n += statSync(join(d, e.name)).size;
    }
  };
  try {
    walk(join(r.dir, 'data', 'docker', 'registry', 'v2', 'blobs'));
  } catch {
    return 0;
  }
  return n;
}

/** Stops a registry early, by its PID (startRegistry's teardown reaps it). */
async function stop(r: Registry): Promise<void> {
  try {
    process.kill(r.pid, 'SIGTERM');
  } catch {
    return;
  }
  // Until the port no longer answers: the teardown of startRegistry reaps the process.
  for (let i = 0; i < 50; i++) {
    try {
      const res = await fetch(`http://${r.host}/v2/`);
      await res.arrayBuffer();
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

t.test('through a pull-through cache: filled by one machine, serving another with the upstream down; falling back to the upstream when it is down', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-pullthrough-');
  const pki = await mintPki(t);
  const images = await buildImages(work);
  const upstream = await startRegistry(t);
  const release = await publishYaml({ dir: work, yaml: manifestYaml({ targets: [T.hostfs(images), T.data(images)] }), repo: upstream.host, name: 'machine/install:1', pki });
  const proxy = await startRegistry(t, { proxy: `http://${upstream.host}` });
  const deadProxy = await startRegistry(t, { proxy: `http://${upstream.host}` });
  const dir = tempDir(t);
  const confFor = (name: string, mirror: Registry) => {
    const f = join(dir, name);
    writeFileSync(f, `[[registry]]\nprefix = "${upstream.host}"\n[[registry.mirror]]\nlocation = "${mirror.host}"\n`);
    return f;
  };
  const viaProxy = confFor('proxy.conf', proxy);
  const machine = () => {
    const root = makeSystemRoot(t);
    placeCa(root, pki);
    return root;
  };
  const limits = { retries: 0, retryBaseMs: 5, requestTimeoutMs: 5000 };

  t.equal(storedBlobBytes(proxy), 0, 'the cache starts empty');
  const a = await install({ root: machine(), source: release.reference, registriesConf: viaProxy, limits });
  t.equal(a.generation, 1, 'machine A installs through the cache');
  const cached = storedBlobBytes(proxy);
  t.ok(cached >= a.blobBytes, `the cache now holds the release (${cached} bytes on disk, ${a.blobBytes} pulled)`);

  // The proxy down: a machine falls back to the upstream.
  await stop(deadProxy);
  const c = await install({ root: machine(), source: release.reference, registriesConf: confFor('dead.conf', deadProxy), limits });
  t.equal(c.generation, 1, 'machine C installs from the upstream with its mirror down');

  // The upstream down: the cache alone serves machine B (tag, signature, images), verified as always.
  await stop(upstream);
  const rootB = machine();
  const b = await install({ root: rootB, source: release.reference, registriesConf: viaProxy, limits });
  t.equal(b.generation, 1, 'machine B installs from the cache with the upstream down');
  const fsck = await runCli('mosctl', ['--root', rootB, 'fsck']);
  t.equal(fsck.code, 0, `and its store and signatures check out: ${fsck.stdout}${fsck.stderr}`);
  const noMirror = await install({ root: machine(), source: release.reference, registriesConf: confFor('none.conf', deadProxy), limits }).catch((e: Error) => e);
  t.match(noMirror, { code: /^REGISTRY_/, message: /every location failed: mirror 1 .*; primary / }, 'with neither up: the error names both');
});
