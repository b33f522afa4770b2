import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openLayout } from '../../src/oci/index.js';
import { buildImage, publish, type PublishResult } from '../../src/build/index.js';
import { buildBusyboxRootfs } from './lxc.js';
import type { Pki } from './pki.js';

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
}

/**
 * A system root outside tap's testdirs (those are removed before teardowns run). Teardown stops every
 * container under `<root>/var/lib/lxc`, unmounts everything below the root deepest first, and only then
 * removes the tree (never recursively through a mount).
 */
export function makeSystemRoot(t: Test, prefix = 'mosctl-root-'): string {
  const root = mkdtempSync(join('/var/tmp', prefix));
  chmodSync(root, 0o755);
  t.teardown(() => teardownRoot(root));
  return root;
}

export function teardownRoot(root: string): void {
  const lxcPath = join(root, 'var', 'lib', 'lxc');
  if (existsSync(lxcPath)) {
    for (const name of readdirSync(lxcPath)) {
      spawnSync('lxc-stop', ['-n', name, '-P', lxcPath, '-k'], { stdio: 'ignore', timeout: 10_000 });
    }
  }
  for (const m of mountsUnder(root)) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  if (mountsUnder(root).length === 0) rmSync(root, { recursive: true, force: true });
}

/**
 * Activating a container adds its nsgroup's range to /etc/subuid and /etc/subgid (LXC maps through
 * newuidmap), as a real system needs; a test puts both files back as they were in teardown.
 */
export function restoreSubIdsAfter(t: Test): void {
  const saved = ['/etc/subuid', '/etc/subgid'].map((f) => [f, existsSync(f) ? readFileSync(f, 'utf8') : undefined] as const);
  t.teardown(() => {
    for (const [f, text] of saved) {
      if (text === undefined) rmSync(f, { force: true });
      else writeFileSync(f, text);
    }
  });
}

/** Installs the test CA where the initrd would put it. */
export function placeCa(root: string, pki: Pki): void {
  mkdirSync(join(root, 'factory', 'secure'), { recursive: true });
  copyFileSync(pki.caCert, join(root, 'factory', 'secure', 'manifestCA.pem'));
}

/** Example images built once per test file into an OCI layout at `<dir>/images`. */
export interface Images {
  readonly layout: string;
  /** tag → manifest digest */
  readonly digests: Readonly<Record<string, string>>;
}

/**
 * Builds small busybox images: `hostfs-1.0`, `hostfs-1.1` (a changed /etc/os-release), `data-1.0`
 * (fs-only content), `service-1.0` (a long-running container command), `extra-1.0`.
 */
export async function buildImages(dir: string): Promise<Images> {
  const layout = join(dir, 'images');
  const store = await openLayout(layout, { create: true });
  const digests: Record<string, string> = {};
  const tree = (name: string, extra: Record<string, string>) => {
    const d = join(dir, 'trees', name);
    buildBusyboxRootfs(d);
    for (const [p, content] of Object.entries(extra)) {
      mkdirSync(join(d, p, '..'), { recursive: true });
      writeFileSync(join(d, p), content);
    }
    return d;
  };
  const specs: [string, Record<string, string>, Record<string, unknown>?][] = [
    ['hostfs-1.0', { 'etc/os-release': 'NAME=demo\nVERSION=1.0\n' }],
    ['hostfs-1.1', { 'etc/os-release': 'NAME=demo\nVERSION=1.1\n', u1: 'new in 1.1\n' }],
    ['data-1.0', { 'share/data.txt': 'data 1.0\n' }],
    ['extra-1.0', { 'share/extra.txt': 'extra\n' }],
    ['service-1.0', { 'etc/service.conf': 'svc\n' }, { entrypoint: ['/bin/sh', '-c', 'while true; do sleep 1; done'] }],
  ];
  for (const [tag, extra, config] of specs) {
    const r = await buildImage({ rootfs: tree(tag, extra), dst: store, tag, ...(config ? { config } : {}) });
    digests[tag] = r.descriptor.digest;
  }
  return { layout, digests };
}

/** A manifest.yaml with two storage volumes over target lines made by `T`. */
export function manifestYaml(opts: { product?: string; updateType?: 'complete' | 'partial'; targets: string[] }): string {
  const lines = [`version: 1`, `product: ${opts.product ?? 'de6c82c5-2e01-4c92-949b-a6545d30fc06'}`, `update_type: ${opts.updateType ?? 'complete'}`];
  lines.push('storage:', '  - {label: appdata, persistent: true, nsgroup: c1, size: 10}', '  - {label: cache, persistent: false, nsgroup: c2, size: 10}');
  lines.push('targets:');
  for (const t of opts.targets) lines.push(t);
  return lines.join('\n') + '\n';
}

/** Target lines for manifestYaml. */
export const T = {
  hostfs: (images: Images, v = '1.0') =>
    `  - {service_name: hostfs, source: "oci:${images.layout}:hostfs-${v}", version: "${v}.0", service_type: hostfs, network: {type: host}, nsgroup: ""}`,
  data: (images: Images) => `  - {service_name: data, source: "oci:${images.layout}:data-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`,
  extra: (images: Images) => `  - {service_name: extra, source: "oci:${images.layout}:extra-1.0", version: "1.0.0", service_type: fs-only, network: {type: none}, nsgroup: ""}`,
  service: (images: Images, v = '1.0.0') =>
    `  - {service_name: svc, source: "oci:${images.layout}:service-1.0", version: "${v}", service_type: container, network: {type: none}, nsgroup: c1, storage: [{dest: /data, label: appdata}, {dest: /cache, label: cache}]}`,
};

/** Publishes a YAML string (signed by the test PKI) to `repo` as `name`. */
export async function publishYaml(opts: { dir: string; yaml: string; repo: string; name: string; pki: Pki }): Promise<PublishResult> {
  const file = join(opts.dir, `${opts.name.replace(/[/:]/g, '_')}.yaml`);
  writeFileSync(file, opts.yaml);
  return publish({ manifestFile: file, repo: opts.repo, name: opts.name, cert: opts.pki.chainPem, key: opts.pki.leafKey });
}
