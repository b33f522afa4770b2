import { silentLogger, type Logger, type RegistryLimits } from '../../base/index.js';
import type { Platform } from '../types.js';
import type { Credentials } from './credentials.js';

/** How to reach registries. Every field is optional; defaults are in each doc comment (the limits' in RegistryLimits). */
export interface RegistryOptions extends RegistryLimits {
  /** Hosts (`host[:port]`) allowed over plain HTTP besides loopback ones. TLS is still tried first. */
  readonly insecureHosts?: readonly string[];
  /** Talk plain HTTP without trying TLS. Only for loopback hosts and `insecureHosts`, else REGISTRY_INSECURE_REFUSED. */
  readonly plainHttp?: boolean;
  /** Extra PEM CA files trusted besides the system CAs (`--registry-ca`). */
  readonly caFiles?: readonly string[];
  /** Extra CA certificates as PEM text (what the unprivileged downloader gets instead of file names). */
  readonly caPems?: readonly string[];
  /** Docker config.json / containers auth.json; default `$REGISTRY_AUTH_FILE`, then `~/.docker/config.json`. */
  readonly authFile?: string;
  /** Credentials to use instead of the auth file; null: none, and no auth file is searched (the downloader child). */
  readonly credentials?: Credentials | null;
  /** A fetch to use instead of node:http (tests); it brings its own TLS settings (`caFiles` are not passed to it). */
  readonly fetch?: typeof fetch;
  /** Default silent. Never receives credentials or tokens. */
  readonly log?: Logger;
  /** Parallel blob downloads per repository; default 4. */
  readonly concurrency?: number;
  /** A `Retry-After` longer than this fails at once instead of waiting, ms; default 60 000. */
  readonly maxRetryAfterMs?: number;
  /** Blobs up to this size are uploaded in one PUT, larger ones in PATCH chunks of this size; default 16 MiB. */
  readonly chunkSize?: number;
  /** Platform picked from image indexes; default the host's (linux/amd64, …). */
  readonly platform?: Platform;
}

/** Defaults filled in once. */
export interface ResolvedOptions {
  readonly insecureHosts: readonly string[];
  readonly plainHttp: boolean;
  readonly caFiles: readonly string[];
  readonly caPems: readonly string[];
  readonly authFile: string | undefined;
  readonly credentials: Credentials | null | undefined;
  readonly fetch: typeof fetch | undefined;
  readonly log: Logger;
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly minBytesPerSecond: number;
  readonly maxBytesPerSecond: number;
  readonly rateWindowMs: number;
  readonly requestDeadlineMs: number;
  readonly retries: number;
  readonly retryBaseMs: number;
  readonly maxRetryAfterMs: number;
  readonly chunkSize: number;
  readonly platform: Platform | undefined;
}

export function resolveOptions(o: RegistryOptions): ResolvedOptions {
  return {
    insecureHosts: o.insecureHosts ?? [],
    plainHttp: o.plainHttp ?? false,
    caFiles: o.caFiles ?? [],
    caPems: o.caPems ?? [],
    authFile: o.authFile,
    credentials: o.credentials,
    fetch: o.fetch,
    log: o.log ?? silentLogger,
    concurrency: Math.max(1, o.concurrency ?? 4),
    requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
    stallTimeoutMs: o.stallTimeoutMs ?? 30_000,
    minBytesPerSecond: Math.max(0, o.minBytesPerSecond ?? 1024),
    maxBytesPerSecond: Math.max(0, o.maxBytesPerSecond ?? 0),
    rateWindowMs: Math.max(1, o.rateWindowMs ?? 60_000),
    requestDeadlineMs: Math.max(1, o.requestDeadlineMs ?? 3_600_000),
    retries: Math.max(0, o.retries ?? 3),
    retryBaseMs: o.retryBaseMs ?? 250,
    maxRetryAfterMs: o.maxRetryAfterMs ?? 60_000,
    chunkSize: Math.max(1, o.chunkSize ?? 16 * 1024 * 1024),
    platform: o.platform,
  };
}

/** True for hosts where plain HTTP cannot leave the machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostOnly(hostPort);
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `host[:port]` → host, without IPv6 brackets, lowercased. */
export function hostOnly(hostPort: string): string {
  const h = hostPort.toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** True when plain HTTP to `hostPort` is allowed: loopback, or named in `insecureHosts`. */
export function plainHttpAllowed(hostPort: string, insecureHosts: readonly string[]): boolean {
  const h = hostPort.toLowerCase();
  return isLoopbackHost(h) || insecureHosts.some((i) => i.toLowerCase() === h || i.toLowerCase() === hostOnly(h));
}
