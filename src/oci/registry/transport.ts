import { MosError } from '../../base/index.js';
import { Authenticator } from './auth.js';
import type { Credentials } from './credentials.js';
import { isRetriableNetworkError, networkError, redactUrl, responseError, errorCodes, PLAIN_HTTP_CODES } from './errors.js';
import { retryAfterMs } from './headers.js';
import { plainHttpAllowed, type ResolvedOptions } from './options.js';
import { httpFetchFor, type HttpFetch, type HttpResponse } from './http.js';

/** One HTTP request as the registry client issues it. */
export interface RegistryRequest {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path on the registry (`/v2/...`) or an absolute URL (upload Locations). */
  readonly url: string;
  /** Token scopes this request needs, e.g. `repository:mos/x:pull`. */
  readonly scopes: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  /** Bodies are buffers so retries and redirects can resend them. */
  readonly body?: Uint8Array;
  /** Retry on 5xx/429/resets (default true; off for requests that must not repeat). */
  readonly retry?: boolean;
  /** What we are doing, for error messages ("fetch manifest"). */
  readonly what: string;
  readonly signal?: AbortSignal | undefined;
}

/** A response with its body still unread, and the controls of its stall timer. */
export interface Exchange {
  readonly res: HttpResponse;
  /** The final URL (after redirects). */
  readonly url: string;
  /** When the request was sent (ms since the epoch): the request deadline counts from here. */
  readonly startedAt: number;
  /** Starts the stall timer (no byte for `ms` aborts the transfer). */
  arm(ms: number): void;
  disarm(): void;
  /** True when the stall timer aborted the transfer. */
  readonly stalled: boolean;
  abort(): void;
  release(): void;
}

class Stall extends Error {}

/** Milliseconds as seconds with one decimal, for messages. */
/** One budget per rate, shared by every transfer of the process: parallel blobs and mirrors share the cap. */
const limiters = new Map<number, (bytes: number) => Promise<void>>();

/**
 * A token bucket of `rate` bytes/s with a quarter second of burst: each chunk takes its share of time,
 * and the caller waits when ahead of the budget (the socket then applies TCP back-pressure upstream).
 */
function rateLimiter(rate: number): (bytes: number) => Promise<void> {
  let l = limiters.get(rate);
  if (!l) {
    let next = 0;
    l = async (bytes: number) => {
      const now = Date.now();
      next = Math.max(next, now - 250) + (bytes * 1000) / rate;
      if (next > now) await new Promise((r) => setTimeout(r, next - now));
    };
    limiters.set(rate, l);
  }
  return l;
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Bound on redirect chains: a loop fails fast with REGISTRY_PROTOCOL. */
export const MAX_REDIRECTS = 10;

/**
 * HTTP to one registry host: scheme choice (TLS first; plain HTTP only for loopback and insecure
 * hosts), auth, manual redirects (Authorization only to the registry's own origin), retries with
 * backoff on 5xx/429/resets, header and stall timeouts. Throws MosErrors whose subject is the URL
 * without credentials.
 */
export class Transport {
  readonly auth: Authenticator;
  private readonly warned = new Set<string>();
  private originP: Promise<string> | undefined;
  private fetchP: Promise<HttpFetch> | undefined;

  constructor(
    readonly host: string,
    private readonly opts: ResolvedOptions,
    credentials: () => Promise<Credentials | undefined>,
  ) {
    this.auth = new Authenticator(credentials, (url, headers, signal) => this.tokenGet(url, headers, signal), opts.log);
  }

  /** `https://host` or `http://host`, found by pinging `/v2/` once. */
  origin(signal?: AbortSignal): Promise<string> {
    this.originP ??= this.ping(signal);
    this.originP.catch(() => (this.originP = undefined));
    return this.originP;
  }

  private async ping(signal?: AbortSignal): Promise<string> {
    const allowed = plainHttpAllowed(this.host, this.opts.insecureHosts);
    if (this.opts.plainHttp && !allowed) throw insecureRefused(`http://${this.host}/v2/`);
    const candidates = this.opts.plainHttp ? [`http://${this.host}`] : [`https://${this.host}`, ...(allowed ? [`http://${this.host}`] : [])];
    for (const [i, origin] of candidates.entries()) {
      const url = `${origin}/v2/`;
      let ex: Exchange;
      try {
        ex = await this.withRetries(url, 'ping registry', true, signal, () => this.send(url, { method: 'GET', headers: {} }, signal));
      } catch (e) {
        // A plain-HTTP server answering a TLS hello: fall back to HTTP where that is allowed.
        const codes = errorCodes((e as { cause?: unknown }).cause ?? e);
        if (i < candidates.length - 1 && codes.some((c) => PLAIN_HTTP_CODES.has(c))) {
          this.opts.log.debug('registry does not speak TLS; using plain HTTP (loopback or insecure host)', { host: this.host });
          continue;
        }
        throw e;
      }
      const status = ex.res.status;
      this.auth.learn(ex.res.headers.get('www-authenticate'));
      if (status === 200 || status === 401) {
        await discard(ex);
        return origin;
      }
      throw await responseError(ex.res, url, 'ping registry (GET /v2/)', { 404: 'REGISTRY_PROTOCOL' });
    }
    throw new MosError({ code: 'INTERNAL', message: 'no scheme candidates' });
  }

  /** Sends a request: auth, redirects, retries. Returns any status except 401/403 and exhausted 5xx/429. */
  async request(req: RegistryRequest): Promise<Exchange> {
    const base = await this.origin(req.signal);
    let url = req.url.startsWith('/') ? base + req.url : req.url;
    let method: string = req.method;
    let body = req.body;
    let scopes = [...req.scopes];
    let authTries = 0;
    let redirects = 0;
    let retries = 0;
    for (;;) {
      const u = new URL(url);
      if (u.protocol === 'http:' && !plainHttpAllowed(u.host, this.opts.insecureHosts)) throw insecureRefused(url);
      const sameOrigin = u.origin === base;
      const headers: Record<string, string> = { ...req.headers };
      const authorization = sameOrigin ? await this.auth.header(scopes, req.signal) : undefined;
      if (authorization) headers.authorization = authorization;
      if (body) headers['content-length'] = String(body.byteLength);
      let ex: Exchange;
      try {
        ex = await this.send(url, { method, headers, ...(body ? { body } : {}) }, req.signal);
      } catch (e) {
        if (req.retry !== false && retries < this.opts.retries && isRetriableNetworkError(e)) {
          retries++;
          await this.backoff(retries, undefined, req.signal);
          continue;
        }
        throw networkError(e, url, req.what);
      }
      this.surfaceWarnings(ex.res.headers.get('warning'));
      const status = ex.res.status;
      if (status === 401 && sameOrigin && authTries < 3) {
        const next = await this.auth.challenged(ex.res.headers.get('www-authenticate'), scopes, authorization);
        if (next) {
          authTries++;
          scopes = next;
          await discard(ex);
          continue;
        }
      }
      if (status === 401 || status === 403) {
        const creds = authorization !== undefined;
        throw await responseError(ex.res, url, `${req.what} (${status === 403 ? 'access denied' : creds ? 'credentials were rejected' : 'authentication required'})`, {
          401: 'REGISTRY_UNAUTHORIZED',
          403: 'REGISTRY_DENIED',
        });
      }
      if (REDIRECTS.has(status)) {
        const loc = ex.res.headers.get('location');
        await discard(ex);
        if (!loc) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: `${req.what}: redirect without a Location` });
        if (++redirects > MAX_REDIRECTS) {
          throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: `${req.what}: more than ${MAX_REDIRECTS} redirects (a redirect loop?)`, hint: 'the registry or its blob storage is misconfigured' });
        }
        url = new URL(loc, url).href;
        if (status === 303) {
          method = 'GET';
          body = undefined;
        }
        continue;
      }
      if (status === 429 || status >= 500) {
        const wait = retryAfterMs(ex.res.headers.get('retry-after'));
        if (req.retry !== false && retries < this.opts.retries && (wait === undefined || wait <= this.opts.maxRetryAfterMs)) {
          await discard(ex);
          retries++;
          this.opts.log.debug('registry asked to retry', { url: redactUrl(url), status, waitMs: wait });
          await this.backoff(retries, wait, req.signal);
          continue;
        }
        throw await responseError(ex.res, url, `${req.what}${wait !== undefined ? ` (Retry-After ${Math.ceil(wait / 1000)} s)` : ''}`);
      }
      return ex;
    }
  }

  /**
   * Iterates a response body. REGISTRY_TIMEOUT when no byte comes for `stallTimeoutMs`, when fewer than
   * `minBytesPerSecond` arrive over a `rateWindowMs` window, or past `requestDeadlineMs` since the
   * request was sent, each naming the limit hit. Raw network errors pass through.
   */
  async *body(ex: Exchange, what: string): AsyncGenerator<Uint8Array> {
    const stream = ex.res.body;
    if (!stream) return;
    const reader = stream[Symbol.asyncIterator]();
    let finished = false;
    const { rateWindowMs, requestDeadlineMs, maxBytesPerSecond } = this.opts;
    // Throttled on purpose: the slowest rate accepted is at most half the cap.
    const minBytesPerSecond = maxBytesPerSecond > 0 ? Math.min(this.opts.minBytesPerSecond, maxBytesPerSecond / 2) : this.opts.minBytesPerSecond;
    const limiter = maxBytesPerSecond > 0 ? rateLimiter(maxBytesPerSecond) : undefined;
    let windowStart = Date.now();
    let windowBytes = 0;
    try {
      for (;;) {
        const now = Date.now();
        if (now - ex.startedAt > requestDeadlineMs) throw this.limitHit(ex.url, what, `took longer than the ${seconds(requestDeadlineMs)} s deadline of one request`);
        if (now - windowStart >= rateWindowMs) {
          const rate = (windowBytes * 1000) / (now - windowStart);
          if (minBytesPerSecond > 0 && rate < minBytesPerSecond) {
            throw this.limitHit(ex.url, what, `${Math.round(rate)} B/s over ${seconds(now - windowStart)} s, below the minimum of ${minBytesPerSecond} B/s`);
          }
          windowStart = now;
          windowBytes = 0;
        }
        ex.arm(this.opts.stallTimeoutMs);
        let r: IteratorResult<Uint8Array>;
        try {
          r = await reader.next();
        } catch (e) {
          if (ex.stalled) throw this.timeout(ex.url, what, 'no data');
          throw e;
        } finally {
          ex.disarm();
        }
        if (r.done) {
          finished = true;
          return;
        }
        windowBytes += r.value.byteLength;
        if (limiter) await limiter(r.value.byteLength);
        yield r.value;
      }
    } finally {
      if (!finished) {
        ex.abort();
        // Through the iterator: it holds the body (a web stream is locked to it while it reads).
        await reader.return?.().catch(() => {});
      }
      ex.release();
    }
  }

  /** Reads a whole body, refusing more than `cap` bytes (stops reading at the first byte past it). */
  async readCapped(ex: Exchange, cap: number, what: string, subject: string): Promise<Uint8Array> {
    const declared = Number(ex.res.headers.get('content-length') ?? NaN);
    const tooLarge = () =>
      new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject, message: `${what}: larger than the ${cap}-byte limit`, hint: 'manifests, indexes and configs are read whole and capped at 4 MiB' });
    if (declared > cap) {
      await discard(ex);
      throw tooLarge();
    }
    const parts: Uint8Array[] = [];
    let n = 0;
    try {
      for await (const chunk of this.body(ex, what)) {
        n += chunk.byteLength;
        if (n > cap) throw tooLarge();
        parts.push(chunk);
      }
    } catch (e) {
      throw networkError(e, ex.url, what);
    }
    return new Uint8Array(Buffer.concat(parts));
  }

  /** One fetch with the header timeout; the returned exchange owns the abort controller. */
  private async send(url: string, init: { method: string; headers: Record<string, string>; body?: Uint8Array }, signal?: AbortSignal): Promise<Exchange> {
    const ac = new AbortController();
    const relay = () => ac.abort(signal?.reason);
    if (signal?.aborted) throw signal.reason;
    signal?.addEventListener('abort', relay, { once: true });
    let timer: NodeJS.Timeout | undefined;
    let stalled = false;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        ac.abort(new Stall('stalled'));
      }, ms);
    };
    const release = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', relay);
    };
    arm(this.opts.requestTimeoutMs);
    const startedAt = Date.now();
    let res: HttpResponse;
    try {
      this.fetchP ??= this.fetcher();
      res = await (await this.fetchP)(url, { ...init, signal: ac.signal });
    } catch (e) {
      release();
      if (signal?.aborted) throw signal.reason;
      if (stalled) throw this.timeout(url, `${init.method} request`, 'no response');
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return {
      res,
      url,
      startedAt,
      arm,
      disarm: () => clearTimeout(timer),
      get stalled() {
        return stalled;
      },
      abort: () => ac.abort(),
      release,
    };
  }

  /** node:http with this transport's agents, or an injected fetch (which brings its own TLS settings). */
  private async fetcher(): Promise<HttpFetch> {
    const injected = this.opts.fetch;
    if (!injected) return httpFetchFor(this.opts);
    return (url, init) => injected(url, { ...init, redirect: 'manual' });
  }

  private async withRetries(url: string, what: string, retry: boolean, signal: AbortSignal | undefined, fn: () => Promise<Exchange>): Promise<Exchange> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (retry && attempt < this.opts.retries && isRetriableNetworkError(e)) {
          await this.backoff(attempt + 1, undefined, signal);
          continue;
        }
        const err = networkError(e, url, what);
        throw err;
      }
    }
  }

  private async tokenGet(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpResponse> {
    const u = new URL(url);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && plainHttpAllowed(u.host, this.opts.insecureHosts))) throw insecureRefused(url);
    const ex = await this.withRetries(url, 'token request', true, signal, () => this.send(url, { method: 'GET', headers }, signal));
    // The token body is small and read at once by the caller; the header timer already passed.
    ex.release();
    return ex.res;
  }

  /** distribution-spec: `Warning: 299 - "text"` headers are shown (once each), never acted on. */
  private surfaceWarnings(header: string | null): void {
    for (const m of (header ?? '').matchAll(/299\s+\S+\s+"((?:[^"\\]|\\.)*)"/g)) {
      const text = m[1]!.slice(0, 500);
      if (this.warned.has(text) || this.warned.size > 100) continue;
      this.warned.add(text);
      this.opts.log.warn(`registry ${this.host}: ${text}`);
    }
  }

  private limitHit(url: string, what: string, detail: string): MosError {
    return new MosError({ code: 'REGISTRY_TIMEOUT', subject: redactUrl(url), message: `${what}: ${detail}`, hint: 'the registry or the network is too slow; try again later, or raise the limit' });
  }

  private timeout(url: string, what: string, detail: string): MosError {
    return new MosError({
      code: 'REGISTRY_TIMEOUT',
      subject: redactUrl(url),
      message: `${what}: ${detail} for ${Math.round((detail === 'no data' ? this.opts.stallTimeoutMs : this.opts.requestTimeoutMs) / 100) / 10} s`,
      hint: 'the registry or the network stalled; try again later',
    });
  }

  /** Exponential backoff with jitter, or the server's Retry-After; aborts with `signal`. */
  private backoff(attempt: number, retryAfter: number | undefined, signal?: AbortSignal): Promise<void> {
    const ms = retryAfter ?? this.opts.retryBaseMs * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Drops a response body so its connection can be reused (or closed). */
export async function discard(ex: Exchange): Promise<void> {
  await ex.res.body?.cancel().catch(() => {});
  ex.release();
}

function insecureRefused(url: string): MosError {
  return new MosError({
    code: 'REGISTRY_INSECURE_REFUSED',
    subject: redactUrl(url),
    message: 'refusing plain HTTP to a non-loopback host',
    hint: 'use TLS, or name the host with --insecure-registry if plain HTTP is really intended',
  });
}
