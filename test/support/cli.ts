import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const top = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The environment for a child node process (a built CLI or a worker): ours minus what tap adds for
 * its own children. tap's NODE_OPTIONS imports its process-info/coverage hook into every node started
 * below a test and NODE_V8_COVERAGE makes V8 write a coverage file at exit; with them a CLI starts
 * 0.1-0.2 s slower and its run is reported as a tap subprocess. The child is a plain node on built JS.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k === 'TS_NODE_TRANSPILE_ONLY' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Path of a built entry point; `npm test` builds first (pretest). */
export function cliPath(name: 'mosctl' | 'mosb'): string {
  return join(top, 'dist', 'cmd', `${name}.js`);
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON when the command ran with --json, else undefined. */
  readonly json: unknown;
}

/** Runs the built CLI and collects its output (never throws on a non-zero exit). */
export function runCli(
  name: 'mosctl' | 'mosb',
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(name), ...args], {
      env: childEnv(opts.env),
      cwd: opts.cwd ?? top,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      if (args.includes('--json')) {
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
      }
      resolve({ code: code ?? 128, stdout, stderr, json });
    });
    child.stdin.end(opts.input ?? '');
  });
}
