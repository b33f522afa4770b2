import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError } from '../base/index.js';

/** How a child process is run. */
export interface ExecOptions {
  readonly signal?: AbortSignal;
  /** Kill the child after this many ms; default 10 minutes. */
  readonly timeoutMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string | Uint8Array;
  /** Exit codes counted as success; default [0]. */
  readonly okCodes?: readonly number[];
  /** Max bytes of stdout kept; default 64 MiB. */
  readonly maxStdout?: number;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const STDERR_TAIL = 1024;

/**
 * Runs argv (never a shell string) and collects its output. Throws HOST_TOOL_MISSING when the program
 * is absent and HOST_EXEC_FAILED on a non-ok exit, with the command and the last 1 KiB of stderr.
 */
export function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new MosError({ code: 'INTERNAL', message: 'exec: empty argv' });
  const okCodes = opts.okCodes ?? [0];
  const maxStdout = opts.maxStdout ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      signal: opts.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let outLen = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      outLen += b.length;
      if (outLen <= maxStdout) out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      err = (err + b.toString('utf8')).slice(-16 * STDERR_TAIL);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(new MosError({ code: 'HOST_TOOL_MISSING', subject: file, message: `${file} is not installed`, hint: 'install it (see README: set-up)', cause: e }));
      } else {
        reject(new MosError({ code: 'HOST_EXEC_FAILED', subject: file, message: `${file}: ${e.message}`, cause: e }));
      }
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const rc = code ?? 128;
      if (!okCodes.includes(rc)) {
        const tail = err.trim().slice(-STDERR_TAIL);
        reject(
          new MosError({
            code: 'HOST_EXEC_FAILED',
            subject: argv.join(' ').slice(0, 300),
            message: `${file} ${sig ? `killed by ${sig}` : `exited ${rc}`}${tail ? `: ${tail}` : ''}`,
          }),
        );
        return;
      }
      resolve({ code: rc, stdout, stderr: err });
    });
    child.stdin.on('error', () => {}); // a child that exits without reading its input is not our error
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * True when `program` is an executable file on PATH (or at that path when it contains a `/`), as the
 * shell's `command -v` decides, without spawning a shell.
 */
export async function hasProgram(program: string, path: string = process.env.PATH ?? ''): Promise<boolean> {
  if (program === '') return false;
  const candidates = program.includes('/') ? [program] : path.split(':').map((dir) => join(dir || '.', program));
  for (const file of candidates) if (await isExecutableFile(file)) return true;
  return false;
}

/** Checks before any work that every program is on PATH; the first missing one is HOST_TOOL_MISSING with `hint`. */
export async function requirePrograms(programs: readonly string[], hint: string): Promise<void> {
  for (const p of programs) {
    if (!(await hasProgram(p))) throw new MosError({ code: 'HOST_TOOL_MISSING', subject: p, message: 'is not installed', hint });
  }
}

// Any failure (absent, not a directory, not searchable) means "not in this PATH entry", as for the shell.
async function isExecutableFile(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True while process `pid` exists (ours always does; EPERM means it exists under another user). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
