import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const top = fileURLToPath(new URL('../..', import.meta.url));

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
      env: { ...process.env, ...opts.env },
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
