import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { apiBody, cliDocumentSchema, commandSchema, namingProblems, schemaErrors } from './schema.js';

const top = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The environment for a child node process (a built CLI or a worker): ours minus what tap adds for
 * its own children (NODE_OPTIONS with its process-info/coverage hook, NODE_V8_COVERAGE, TAP_*).
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k === 'TS_NODE_TRANSPILE_ONLY' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_')) continue;
    env[k] = v;
  }
  // As root the CLI reads registries through its unprivileged downloader; tests name the uid as a number
  // so that no run adds a user to this machine's /etc/passwd (test/oci/downloader.test.ts covers that).
  return { MOSCTL_DOWNLOADER_USER: String(TEST_DOWNLOADER_UID), ...env, ...extra };
}

/** The uid (and gid) the CLIs' downloader runs as in tests. */
export const TEST_DOWNLOADER_UID = 64091;

/**
 * The command and arguments that start `node <args>` as a plain node, for spawn(). An env without
 * NODE_OPTIONS is not enough: tap's process-info wraps child_process in the test process and puts
 * its `--import` hook back into NODE_OPTIONS of every child, whatever env is passed. env(1) drops
 * it after that. The hook (ESM loader hooks on every module, coverage kept at exit) more than
 * doubles the CPU a CLI start-up takes (0.5 s -> 1.4 s for `mosctl status` here); the CLIs and
 * workers are not part of the coverage report.
 */
export function plainNode(args: readonly string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', process.execPath, ...args]];
}

/** Like {@link plainNode} for any program that may start node itself (a shell script running the CLI). */
export function withoutTapHook(file: string, args: readonly string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', file, ...args]];
}

/**
 * Path of a built entry point, as the package's `bin` names it (mosctl: the single-file bundle machines
 * run, loaded through its V8 code cache; mosb: the ESM build); `npm test` builds first (pretest).
 */
export function cliPath(name: 'mosctl' | 'mosb'): string {
  return name === 'mosctl' ? join(top, 'dist', 'bundle', 'mosctl.mjs') : join(top, 'dist', 'cmd', 'mosb.js');
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
    const [cmd, argv] = plainNode([cliPath(name), ...args]);
    const child = spawn(cmd, argv, {
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
        // Every --json document of a kind the OpenAPI file describes (errors, status) must follow it.
        const schema = cliDocumentSchema(json) ?? (code === 0 ? commandSchema(args) : undefined);
        const problems = schema !== undefined ? schemaErrors(schema, schema === 'Status' || schema === 'Error' ? json : apiBody(json)) : [];
        // Every result document is versioned.
        if (code === 0 && json !== null && typeof json === 'object' && !Array.isArray(json) && !('error' in json)) {
          const d = json as { apiVersion?: unknown; kind?: unknown };
          if (d.apiVersion !== 'mosctl/v1' || typeof d.kind !== 'string') problems.push(`no apiVersion mosctl/v1 and kind (got ${JSON.stringify(d.apiVersion)}, ${JSON.stringify(d.kind)})`);
        }
        if (problems.length > 0) return reject(new Error(`${name} ${args.join(' ')}: --json output does not follow the ${schema ?? "versioned document"} schema: ${problems.join('; ')}`));
        // And every document, with a schema or not, follows the naming convention.
        const names = namingProblems(json);
        if (names.length > 0) return reject(new Error(`${name} ${args.join(' ')}: --json keys break the naming convention (README "JSON output"): ${names.slice(0, 10).join(', ')}`));
      }
      resolve({ code: code ?? 128, stdout, stderr, json });
    });
    child.stdin.end(opts.input ?? '');
  });
}
