import { Command, CommanderError, Option } from 'commander';
import { MosError, errorDocument, exitCodeOf, stderrLogger, type ErrorCode, type Logger, type OnProgress } from '../../src/base/index.js';
import { makeProgress } from './progress.js';
// Inlined by the compiler and by bundlers, so --version works in a single-file build too.
import pkg from '../../package.json' with { type: 'json' };

/** Options every command has. */
export interface GlobalOptions {
  /** The system root (`--root`, aliases `--rfs`, `-r`); default `/`. */
  readonly root: string;
  readonly debug: boolean;
  readonly json: boolean;
  /** `--server URL --cert C --key K --ca CA`: run the command on that machine's upgrade API. */
  readonly remote?: RemoteOptions;
  /** `--cert` as given (mosctl verify's signer certificate when no --server is given). */
  readonly cert?: string;
}

/** Where a remote command goes and with which client certificate. */
export interface RemoteOptions {
  readonly server: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** What an action hands back: a plain value for --json and the text a person reads. */
export interface CommandOutput {
  readonly result: unknown;
  readonly text?: string;
  /**
   * The command ran but found a failure (validate found problems, boot had a failing target, fsck found
   * damage): the process exits with this code's exit code.
   */
  readonly failure?: ErrorCode;
}

/** Context passed to every action. */
export interface CommandContext {
  readonly globals: GlobalOptions;
  readonly log: Logger;
  /** One bar on a terminal, JSON lines on stderr with --json, a line every 10 s otherwise. */
  readonly onProgress: OnProgress;
  /** Aborted by the first SIGINT or SIGTERM: pass it to every long call, which then stops and cleans up. */
  readonly signal: AbortSignal;
}

/** The exit code of a command stopped by a signal: 128 + its number, as a shell reports it. */
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Creates the top-level program with the global options, usage errors routed to exit 2. */
export function makeProgram(name: string, description: string, opts: { remote?: boolean } = {}): Command {
  const program = new Command(name);
  program
    .description(description)
    .version(pkg.version, '-V, --version', 'print the version')
    .option('-r, --root <dir>', 'system root directory (aliases: --rfs)', '/')
    .addOption(new Option('--rfs <dir>', 'alias of --root').hideHelp())
    .option('--debug', 'verbose logs and error causes', false)
    .option('--json', 'machine-readable result on stdout, logs on stderr', false);
  if (opts.remote) {
    program
      .option('--server <url>', "run the command on a machine's upgrade API (https://HOST:PORT)")
      .option('--cert <file>', 'with --server: client certificate PEM (O=mos:reader|mos:apps|mos:admin)')
      .option('--key <file>', 'with --server: its private key PEM')
      .option('--ca <file>', "with --server: the CA of the server's certificate");
  }
  program
    // A usage error is reported like any other error (one line, a hint; {"error":…} with --json) by
    // runProgram: commander's own message is not printed.
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  return program;
}


function globalsOf(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as { root?: string; rfs?: string; debug?: boolean; json?: boolean; server?: string; cert?: string; key?: string; ca?: string };
  const base = { root: o.rfs ?? o.root ?? '/', debug: o.debug === true, json: o.json === true, ...(o.cert !== undefined ? { cert: o.cert } : {}) };
  if (o.server === undefined) return base;
  const missing = (['cert', 'key', 'ca'] as const).filter((k) => o[k] === undefined);
  if (missing.length > 0) {
    throw new MosError({ code: 'USAGE', subject: '--server', message: `needs ${missing.map((k) => `--${k}`).join(', ')}`, hint: 'mosctl --server https://HOST:PORT --cert C --key K --ca CA COMMAND' });
  }
  return { ...base, remote: { server: o.server, cert: o.cert!, key: o.key!, ca: o.ca! } };
}

/**
 * Wraps an action: builds the context, runs `fn`, prints its output, and maps thrown MosErrors to
 * `mosctl: <subject>: <message>` / `hint:` on stderr (plus `{"error":…}` on stdout with --json).
 */
export function action<A extends unknown[]>(
  fn: (ctx: CommandContext, ...args: A) => Promise<CommandOutput>,
  opts: { remote?: boolean; /** false: the command handles SIGINT/SIGTERM itself (serve). */ signals?: boolean } = {},
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const globals = globalsOf(cmd);
    if (globals.remote && !opts.remote) {
      throw new MosError({
        code: 'USAGE',
        subject: `${cmd.name()} --server`,
        message: `${cmd.name()} runs on the machine itself and is not available through the upgrade API`,
        hint: 'remote commands: status, history, update, rollback, activate, deactivate, gc, pin, unpin, audit, operations',
      });
    }
    const log = stderrLogger({ debug: globals.debug, json: globals.json });
    const name = lineage(cmd)[0]!.name();
    const progress = makeProgress(globals, name);
    // The first SIGINT/SIGTERM aborts the work, which stops at its next check, removes its temp files
    // and leaves the root as it was (or, past the point of no return, completes); a second one exits now.
    const abort = new AbortController();
    let caught: NodeJS.Signals | undefined;
    const onSignal = (sig: NodeJS.Signals) => {
      progress.stop();
      if (caught !== undefined) {
        process.stderr.write(`${name}: ${sig} again: exiting without cleaning up\n`);
        process.exit(SIGNAL_EXIT[sig] ?? 1);
      }
      caught = sig;
      abort.abort(new MosError({ code: 'CANCELED', message: `interrupted by ${sig}` }));
    };
    if (opts.signals !== false) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    try {
      const out = await fn({ globals, log, onProgress: progress.onProgress, signal: abort.signal }, ...(args.slice(0, -1) as A));
      progress.stop();
      if (globals.json) process.stdout.write(JSON.stringify(versioned(out.result, cmd), null, 2) + '\n');
      else if (out.text) process.stdout.write(out.text.endsWith('\n') ? out.text : out.text + '\n');
      if (out.failure !== undefined) process.exitCode = exitCodeOf(out.failure);
      if (caught !== undefined) log.info(`${caught} came after the point of no return: the command completed`);
    } catch (e) {
      progress.stop();
      if (caught === undefined) throw e;
      // One line, whatever the work threw on its way out (an abort error, a closed stream).
      const own = e instanceof MosError && e.code === 'CANCELED' && !/^interrupted by /.test(e.message) ? e.message : 'stopped cleanly, temporary files removed';
      const err = new MosError({ code: 'CANCELED', message: `interrupted by ${caught}: ${own}` });
      process.stderr.write(`${name}: ${err.message}\n`);
      if (globals.json) process.stdout.write(JSON.stringify(errorDocument(err)) + '\n');
      process.exitCode = SIGNAL_EXIT[caught] ?? 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
}

/** The version of every --json document (README "JSON output"); the upgrade API's bodies are versioned by openapi.json. */
export const API_VERSION = 'mosctl/v1';

/**
 * A command's result as its --json document: an object gets `apiVersion` and `kind` first (the command
 * path in PascalCase plus `Result`, e.g. `ImageCopyResult`), unless it carries its own (the status
 * model). Anything else (never the case today) is printed as it is.
 */
export function versioned(result: unknown, cmd: Command): unknown {
  if (result === null || typeof result !== 'object' || Array.isArray(result) || 'apiVersion' in result) return result;
  const names = lineage(cmd).slice(1).map((c) => c.name());
  const kind = `${names.map((n) => n.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')).join('')}Result`;
  return { apiVersion: API_VERSION, kind, ...result };
}

/** The program, then each subcommand down to `cmd` (`mosb`, `image`, `copy`). */
function lineage(cmd: Command): Command[] {
  const out: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) out.unshift(c);
  return out;
}

/** Runs a program to completion: the only place that decides the process exit code. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
  } catch (e) {
    reportError(program, e, { json, debug, args: argv.slice(2) });
  }
}

/**
 * A commander parse error as a USAGE MosError: the subject is the command whose line was wrong, the
 * hint how to see its usage.
 */
function usageError(e: CommanderError, name: string, command: string): MosError {
  const message = e.message.replace(/^error: /, '');
  return new MosError({ code: 'USAGE', ...(command ? { subject: command } : {}), message, hint: `${[name, command].filter(Boolean).join(' ')} --help shows the usage` });
}

/** `image copy`: the subcommands named in `args` (options and operands skipped); '' for none. */
function commandPath(program: Command, args: readonly string[]): string {
  const names: string[] = [];
  let c = program;
  for (const a of args) {
    const sub = c.commands.find((x) => x.name() === a || x.aliases().includes(a));
    if (!sub) continue;
    names.push(sub.name());
    c = sub;
  }
  return names.join(' ');
}

function reportError(program: Command, e: unknown, opts: { json: boolean; debug: boolean; args: readonly string[] }): void {
  const name = program.name();
  if (e instanceof CommanderError) {
    // --help and --version are answers; help shown because no command was given is a usage error.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) {
      process.exitCode = 0;
      return;
    }
    if (e.code === 'commander.help') {
      process.exitCode = exitCodeOf('USAGE');
      return;
    }
    e = usageError(e, name, commandPath(program, opts.args));
  }
  const err =
    e instanceof MosError
      ? e
      : new MosError({ code: 'INTERNAL', message: `internal error (a bug, please report it): ${e instanceof Error ? e.message : String(e)}`, cause: e });
  process.stderr.write(`${name}: ${err.subject ? err.subject + ': ' : ''}${err.message}\n`);
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (opts.debug) {
    let c: unknown = err;
    while (c instanceof Error) {
      process.stderr.write(`${c.stack ?? c.message}\n`);
      c = c.cause;
      if (c) process.stderr.write('caused by: ');
    }
  }
  if (opts.json) process.stdout.write(JSON.stringify(errorDocument(err)) + '\n');
  process.exitCode = err.exitCode;
}
