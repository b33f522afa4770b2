import { readdir } from 'node:fs/promises';
import { MosError } from '../base/index.js';
import { exec, exists } from '../host/index.js';
import type { NetworkSpec } from './types.js';
import { checkContainerName, checkInterfaceName, checkPort, normaliseCidr } from './validate.js';

/**
 * Throws RUNTIME_NETWORK naming the first of `bridges` that is not an existing bridge interface
 * (`/sys/class/net/<br>/bridge`), so a container is never started half-connected.
 */
export async function checkBridges(bridges: readonly string[], subject: string): Promise<void> {
  for (const br of bridges) {
    checkInterfaceName(br, `${subject}: network.bridge`);
    if (await exists(`/sys/class/net/${br}/bridge`)) continue;
    const isIface = await exists(`/sys/class/net/${br}`);
    throw new MosError({
      code: 'RUNTIME_NETWORK',
      subject: `${subject}: bridge ${br}`,
      message: isIface ? `${br} exists but is not a bridge` : `bridge ${br} does not exist`,
      hint: `create it (ip link add ${br} type bridge; ip link set ${br} up) or use network type host or none`,
    });
  }
}

/** Tag on every rule mosctl adds for a container, so removal finds exactly its rules. */
export function portForwardTag(name: string): string {
  return `mosctl:${name}`;
}

/**
 * The iptables argv that forward the `simple` network's ports (TCP, nat PREROUTING DNAT to the static
 * ipv4; only on `hostInterface` when given) (pure; empty for other networks or no ports).
 */
export function planPortForwards(name: string, net: NetworkSpec, hostInterface?: string): string[][] {
  checkContainerName(name);
  const ports = net.type === 'simple' ? (net.ports ?? []) : [];
  if (ports.length === 0) return [];
  const s = `container ${name}`;
  if (!net.ipv4) throw new MosError({ code: 'INPUT_INVALID', subject: `${s}: network.ports`, message: 'port forwards need a static ipv4 address' });
  const addr = normaliseCidr(net.ipv4, 4, `${s}: network.ipv4`).split('/')[0]!;
  if (hostInterface !== undefined) checkInterfaceName(hostInterface, `${s}: host interface`);
  return ports.map((p, i) => {
    checkPort(p.host, `${s}: network.ports[${i}].host`);
    checkPort(p.container, `${s}: network.ports[${i}].container`);
    return [
      'iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp',
      ...(hostInterface !== undefined ? ['-i', hostInterface] : []),
      '--dport', String(p.host), '-m', 'comment', '--comment', portForwardTag(name),
      '-j', 'DNAT', '--to-destination', `${addr}:${p.container}`,
    ];
  });
}

/** Replaces the container's port forwards with those of `net` (idempotent; needs root and iptables). */
export async function applyPortForwards(opts: { name: string; network: NetworkSpec; hostInterface?: string }): Promise<string[][]> {
  const plan = planPortForwards(opts.name, opts.network, opts.hostInterface);
  await removePortForwards({ name: opts.name });
  for (const argv of plan) await run(argv, opts.name);
  return plan;
}

/** Removes every nat rule tagged for the container (idempotent). Returns how many were removed. */
export async function removePortForwards(opts: { name: string }): Promise<number> {
  checkContainerName(opts.name);
  if (!(await hasIptables())) return 0;
  const { stdout } = await run(['iptables', '-t', 'nat', '-S', 'PREROUTING'], opts.name);
  const tag = new RegExp(`--comment "?${portForwardTag(opts.name).replace(/\./g, '\\.')}"?( |$)`);
  let n = 0;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('-A PREROUTING ') || !tag.test(line)) continue;
    // -S prints rules re-usable as argv; our rules contain no quoted spaces.
    await run(['iptables', '-t', 'nat', '-D', ...line.replace(/"/g, '').split(' ').slice(1)], opts.name);
    n++;
  }
  return n;
}

async function hasIptables(): Promise<boolean> {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if ((await readdir(dir).catch(() => [] as string[])).includes('iptables')) return true;
  return false;
}

async function run(argv: string[], name: string): Promise<{ stdout: string }> {
  try {
    return await exec(argv, { timeoutMs: 30_000 });
  } catch (e) {
    throw new MosError({ code: 'RUNTIME_NETWORK', subject: `container ${name}: port forwards`, message: `${argv.slice(0, 5).join(' ')} failed`, hint: 'iptables (nat table) is needed for port forwards', cause: e });
  }
}
