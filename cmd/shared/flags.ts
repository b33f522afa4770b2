import { Option, type Command } from 'commander';
import { createRequire } from 'node:module';
import type * as ShellQuote from 'shell-quote';
import { MosError, type RegistryAccess, type RegistryLimits } from '../../src/base/index.js';

/** Collects a repeatable option's values (commander `argParser`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The registry flags every command that talks to registries takes. */
export interface RegistryFlags {
  readonly insecureRegistry?: string[];
  readonly registryCa?: string[];
  readonly authfile?: string;
  readonly authFile?: string;
  readonly registryTimeout?: string;
  readonly stallTimeout?: string;
  readonly minRate?: string;
  readonly requestDeadline?: string;
  readonly retries?: string;
  readonly registriesConf?: string;
  readonly limitRate?: string;
}

/** Adds the registry flags: `--insecure-registry`, `--registry-ca`, `--authfile` (alias `--auth-file`), `--registries-conf` and the limits. */
export function registryOptions(cmd: Command): Command {
  return cmd
    .option('--insecure-registry <host>', 'allow plain HTTP to this registry host[:port] (repeatable; loopback always allowed)', collect)
    .option('--registry-ca <file>', 'extra PEM CA certificate for registry TLS (repeatable)', collect)
    .option('--authfile <file>', 'registry credentials (default: $REGISTRY_AUTH_FILE, else the containers auth.json files, then ~/.docker/config.json)')
    .addOption(new Option('--auth-file <file>', 'alias of --authfile').hideHelp())
    .option('--registries-conf <file>', 'mirrors and blocked registries, containers-registries.conf(5) (default: $CONTAINERS_REGISTRIES_CONF, else /etc/containers/registries.conf and .d/)')
    .option('--registry-timeout <seconds>', 'wait this long for a reply to start (default 30)')
    .option('--stall-timeout <seconds>', 'give up a transfer that moves no byte for this long (default 30)')
    .option('--min-rate <bytes/s>', 'give up a transfer slower than this over a minute, e.g. 512, 4K, 1M; 0 turns it off (default 1K)')
    .option('--request-deadline <seconds>', 'longest one request may take, reply and body (default 3600)')
    .option('--limit-rate <bytes/s>', 'download at most this fast, all transfers together (e.g. 500K, 2M; default: no limit)')
    .option('--retries <n>', 'retries after a 5xx, 429 or reset, with backoff (default 3)');
}

/** The registry access options of the library calls, from the flags (USAGE naming a bad limit). */
export function registryAccess(f: RegistryFlags): RegistryAccess {
  const authFile = f.authfile ?? f.authFile;
  const limits: { -readonly [K in keyof RegistryLimits]: RegistryLimits[K] } = {};
  if (f.registryTimeout !== undefined) limits.requestTimeoutMs = seconds(f.registryTimeout, '--registry-timeout', 0.1, 86_400) * 1000;
  if (f.stallTimeout !== undefined) limits.stallTimeoutMs = seconds(f.stallTimeout, '--stall-timeout', 0.1, 86_400) * 1000;
  if (f.minRate !== undefined) limits.minBytesPerSecond = byteRate(f.minRate, '--min-rate');
  if (f.requestDeadline !== undefined) limits.requestDeadlineMs = seconds(f.requestDeadline, '--request-deadline', 1, 7 * 86_400) * 1000;
  if (f.retries !== undefined) limits.retries = wholeNumber(f.retries, '--retries', 0, 100);
  if (f.limitRate !== undefined) limits.maxBytesPerSecond = byteRate(f.limitRate, '--limit-rate');
  return {
    ...(f.insecureRegistry ? { insecureHosts: f.insecureRegistry } : {}),
    ...(f.registryCa ? { caFiles: f.registryCa } : {}),
    ...(authFile !== undefined ? { authFile } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(f.registriesConf !== undefined ? { registriesConf: f.registriesConf } : {}),
  };
}

/** A number of seconds in [min, max] (fractions allowed) from flag `name`, or USAGE naming it. */
export function seconds(s: string, flag: string, min: number, max: number): number {
  const n = Number(s);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(s) || !Number.isFinite(n) || n < min || n > max) {
    throw new MosError({ code: 'USAGE', subject: flag, message: `must be a number of seconds from ${min} to ${max}, not ${JSON.stringify(s)}` });
  }
  return n;
}

/** Bytes per second: a whole number with an optional K, M or G suffix (powers of 1024; KiB and KB alike). */
export function byteRate(s: string, flag: string): number {
  const m = /^([0-9]{1,10})\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(s.trim());
  if (!m) throw new MosError({ code: 'USAGE', subject: flag, message: `${JSON.stringify(s)} is not a rate in bytes per second (e.g. 512, 4K, 1M)` });
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}

/** USAGE: a dry run is local (the upgrade API plans updates with POST /v1/plans instead). */
export function noRemoteDryRun(command: string): MosError {
  return new MosError({ code: 'USAGE', subject: `${command} --dry-run`, message: 'is not available with --server', hint: 'run it on the machine, or plan an update with mosctl --server … update --dry-run' });
}

/** Adds `--capath FILE` (the manifest CA). */
export function capathOption(cmd: Command): Command {
  return cmd.option('--capath <file>', 'manifest CA bundle (default <root>/factory/secure/manifestCA.pem)');
}

/** `{ capath }` when the flag was given. */
export function capathOf(f: { readonly capath?: string }): { capath?: string } {
  return f.capath !== undefined ? { capath: f.capath } : {};
}

/** A whole number in [min, max] from flag `name`, or USAGE naming it. */
export function wholeNumber(s: string, name: string, min: number, max: number): number {
  const n = /^[0-9]{1,10}$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new MosError({ code: 'USAGE', subject: name, message: `${JSON.stringify(s)} is not a whole number from ${min} to ${max}` });
  }
  return n;
}

/** A generation number (`--to N`). */
export function generationNumber(s: string, name: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(s)) throw new MosError({ code: 'USAGE', subject: name, message: `${JSON.stringify(s)} is not a generation number` });
  return Number(s);
}

/**
 * A command line from a flag: a JSON array of strings, or shell words (`/bin/sh -c "echo hi"` is three
 * words; quotes and backslashes as in sh, `$VAR` kept literally). Shell operators (`|`, `;`, `>`, ...)
 * are refused: the image runs no shell unless the command names one.
 */
export function argvOf(s: string, flag: string): string[] {
  if (!s.trimStart().startsWith('[')) {
    // Loaded here, not at start-up: only `mosb image build` splits command lines.
    const { parse } = createRequire(import.meta.url)('shell-quote') as typeof ShellQuote;
    const words = parse(s, (name) => `$${name}`);
    const op = words.find((w) => typeof w !== 'string');
    if (op !== undefined) {
      throw new MosError({
        code: 'INPUT_INVALID',
        subject: flag,
        message: `${JSON.stringify(s)} holds a shell operator (${JSON.stringify('op' in op ? op.op : op)}), not a plain command`,
        hint: 'write a JSON array, e.g. \'["/bin/sh","-c","a | b"]\'',
      });
    }
    return words as string[];
  }
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    v = undefined; // reported below, naming the flag
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new MosError({ code: 'INPUT_INVALID', subject: flag, message: `${JSON.stringify(s)} is not a JSON array of strings`, hint: 'e.g. \'["/bin/sh","-c","echo hi"]\'' });
  }
  return v as string[];
}

/** `KEY=VALUE` split at the first `=`, or INPUT_INVALID naming the flag. */
export function keyValue(s: string, flag: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new MosError({ code: 'INPUT_INVALID', subject: flag, message: `${JSON.stringify(s)} is not KEY=VALUE` });
  return [s.slice(0, i), s.slice(i + 1)];
}
