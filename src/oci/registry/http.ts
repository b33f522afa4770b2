import * as http from 'node:http';
import * as https from 'node:https';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { checkPem, readCaFiles, siteCaPems } from './tls.js';
import type { ResolvedOptions } from './options.js';

/**
 * What the registry client reads of a response: a subset of WHATWG `Response`, so an injected `fetch`
 * (tests) still fits. `headers.get` joins repeated headers with ", " as fetch does.
 */
export interface HttpResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  /** Null for HEAD and the bodiless statuses (204, 205, 304). */
  readonly body: HttpBody | null;
}

/** A response body: its chunks, once; `cancel` drops the rest (and the connection with it). A web ReadableStream is one. */
export interface HttpBody extends AsyncIterable<Uint8Array> {
  cancel(reason?: unknown): Promise<void>;
}

/** One request as the transport sends it. Redirects are never followed here. */
export interface HttpInit {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array;
  readonly signal?: AbortSignal;
}

export type HttpFetch = (url: string, init: HttpInit) => Promise<HttpResponse>;

/** Keep-alive agents for one set of CAs and timeouts: connections are reused across repositories. */
interface Agents {
  readonly http: http.Agent;
  readonly https: https.Agent;
  /** Socket idle timeout, ms: a backstop behind the transport's own stall and header timers. */
  readonly idleMs: number;
}

// Statuses whose responses carry no body (RFC 9110).
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

/**
 * The registry client's HTTP: node:http and node:https with keep-alive agents. Not WHATWG fetch, which
 * refuses the "bad ports" of the Fetch standard (10080, 6000, ...) where skopeo and oras reach any
 * registry, and not undici, whose WebAssembly HTTP parser is compiled in every process that makes a
 * request (about 250 ms of a short CLI run, most of it V8 finishing that compile at exit).
 */
export async function httpFetchFor(opts: ResolvedOptions): Promise<HttpFetch> {
  const agents = await agentsFor(opts);
  return (url, init) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const u = new URL(url);
      const tls = u.protocol === 'https:';
      let res: http.IncomingMessage | undefined;
      const signal = init.signal;
      // Not http's own `signal` option: that destroys the socket even after the response is complete,
      // when the agent may already have handed it to the next request.
      const onAbort = () => {
        const e = new DOMException('This operation was aborted', 'AbortError');
        if (res) res.destroy(e);
        else req.destroy(e);
      };
      const req = (tls ? https : http).request(u, { method: init.method, headers: init.headers, agent: tls ? agents.https : agents.http }, (r: http.IncomingMessage) => {
        res = r;
        // A body nobody reads may still fail (a reset): its error must not become an uncaught one.
        r.on('error', () => {});
        r.on('close', () => signal?.removeEventListener('abort', onAbort));
        const status = r.statusCode ?? 0;
        const headers = {
          get(name: string): string | null {
            const v = r.headers[name.toLowerCase()];
            return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
          },
        };
        const bodiless = init.method === 'HEAD' || NULL_BODY_STATUSES.has(status);
        if (bodiless) r.resume();
        resolve({ status, statusText: r.statusMessage ?? '', headers, body: bodiless ? null : nodeBody(r) });
      });
      req.on('error', (e) => {
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(agents.idleMs, () => req.destroy(Object.assign(new Error(`no data for ${agents.idleMs} ms`), { code: 'ETIMEDOUT' })));
      req.end(init.body === undefined ? undefined : Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength));
    });
}

// The response itself, read through its async iterator (no web-stream layer: one promise per chunk).
function nodeBody(res: http.IncomingMessage): HttpBody {
  return {
    [Symbol.asyncIterator]: () => res[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>,
    cancel: async (reason?: unknown) => {
      res.destroy(reason instanceof Error ? reason : undefined);
    },
  };
}

/** The Debian/Ubuntu system bundle, trusted with `caFiles` (Node's default store is Mozilla's). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

// One pair of agents per CA set and timeout pair, shared by every repository (connection reuse).
const agentCache = new Map<string, Promise<Agents>>();

/**
 * The agents for these options: TLS trusting Node's CAs, or with `caFiles`, `caPems` or a site CA file
 * those plus the system bundle. HOST_IO for an unreadable CA file, INPUT_INVALID for a non-PEM one.
 */
function agentsFor(opts: ResolvedOptions): Promise<Agents> {
  const key = [opts.requestTimeoutMs, opts.stallTimeoutMs, ...opts.caFiles, ...opts.caPems].join('\0');
  let p = agentCache.get(key);
  if (!p) {
    p = makeAgents(opts);
    agentCache.set(key, p);
    p.catch(() => agentCache.delete(key));
  }
  return p;
}

async function makeAgents(opts: ResolvedOptions): Promise<Agents> {
  const idleMs = Math.max(opts.requestTimeoutMs, opts.stallTimeoutMs) + 1000;
  const site = await siteCaPems();
  let ca: string[] | undefined;
  if (opts.caFiles.length > 0 || opts.caPems.length > 0 || site.length > 0) {
    ca = [...rootCertificates];
    const system = await readFile(SYSTEM_BUNDLE, 'utf8').catch(() => undefined);
    if (system) ca.push(system);
    for (const pem of opts.caPems) checkPem(pem, 'registry CA');
    ca.push(...(await readCaFiles(opts.caFiles)), ...opts.caPems, ...site);
  }
  // Free keep-alive sockets are unref'd by the agent (they never hold a finished CLI run open) and closed
  // after 4 s idle (undici's default): a server closes idle connections too, and a request sent on one
  // it has just closed fails with a reset (retried for most requests; uploads are not retried).
  const keepAlive = { keepAlive: true, timeout: 4000 };
  return {
    http: new http.Agent(keepAlive),
    https: new https.Agent({ ...keepAlive, ...(ca ? { ca } : {}) }),
    idleMs,
  };
}
