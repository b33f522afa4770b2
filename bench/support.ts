// Shared plumbing of the benchmarks: a docker-registry on 127.0.0.1, timing, medians.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  return port;
}

/** A running Debian docker-registry; `stop()` kills it by PID. */
export interface BenchRegistry {
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts docker-registry on 127.0.0.1 with its storage under `dir` (`<dir>/registry`, or
 * `<dir>/<name>` with `opts.name`); with `opts.proxy`, as a pull-through cache of that URL.
 */
export async function startBenchRegistry(dir: string, opts: { readonly name?: string; readonly proxy?: string } = {}): Promise<BenchRegistry> {
  const port = await freePort();
  const name = opts.name ?? 'registry';
  const config = join(dir, `${name}.yml`);
  await writeFile(
    config,
    `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage:\n  filesystem: { rootdirectory: ${join(dir, name)} }\nhttp: { addr: 127.0.0.1:${port} }\nhealth: { storagedriver: { enabled: false } }\n` +
      (opts.proxy ? `proxy: { remoteurl: "${opts.proxy}" }\n` : ''),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  };
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) return { host: `127.0.0.1:${port}`, port, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error('docker-registry did not start');
}

/** Runs argv to completion; resolves with its wall time and stdout, rejects on a non-zero exit. */
export function timed(argv: readonly string[]): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - t0, stdout }) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))));
  });
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A busybox root filesystem under `<work>/trees/<name>` with `files` added (path -> content), for
 * building bench images. Returns its directory.
 */
export function busyboxTree(work: string, name: string, files: Readonly<Record<string, Buffer | string>>): string {
  const d = join(work, 'trees', name);
  mkdirSync(join(d, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(d, 'bin', 'busybox'));
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(d, p, '..'), { recursive: true });
    writeFileSync(join(d, p), c);
  }
  return d;
}
