import { MosError, type Logger } from '../../base/index.js';
import type { Credentials } from './credentials.js';
import { networkError, redactUrl, responseError } from './errors.js';
import { parseChallenges, type Challenge } from './headers.js';
import type { HttpResponse } from './http.js';

/** Merges scope strings `type:name:a,b` (space-separated lists allowed) into a sorted, deduplicated list. */
export function mergeScopes(...lists: readonly (string | undefined)[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const list of lists) {
    for (const scope of (list ?? '').split(/\s+/).filter(Boolean)) {
      const last = scope.lastIndexOf(':');
      if (last <= 0) continue;
      const resource = scope.slice(0, last);
      const set = byResource.get(resource) ?? new Set<string>();
      for (const a of scope.slice(last + 1).split(',').filter(Boolean)) set.add(a);
      byResource.set(resource, set);
    }
  }
  return [...byResource].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort();
}

/** A raw GET without registry auth (for the token realm), with the transport's timeouts and retries. */
export type TokenGet = (url: string, headers: Record<string, string>, signal?: AbortSignal) => Promise<HttpResponse>;

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/** Default token lifetime when the server gives none (Docker token spec: 60 s). */
const DEFAULT_EXPIRES_S = 60;
/** Token responses are tiny; cap what we parse. */
const MAX_TOKEN_RESPONSE = 1024 * 1024;

/**
 * Registry authentication for one host: learns the challenge (Basic or Bearer) from 401s and pings,
 * sends Basic credentials, or fetches Bearer tokens per (realm, service, scope set) and caches them
 * until shortly before they expire. Credentials and tokens never reach logs or errors.
 */
export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly credentials: () => Promise<Credentials | undefined>,
    private readonly tokenGet: TokenGet,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a challenge seen outside a 401 (zot sends one on a 200 ping). */
  learn(header: string | null): void {
    const c = pick(parseChallenges(header));
    if (c) this.challenge = c;
  }

  /** True once a challenge is known. */
  get scheme(): string | undefined {
    return this.challenge?.scheme;
  }

  /** The `Authorization` value for a request needing `scopes`, or undefined (anonymous). */
  async header(scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      const creds = await this.credentials();
      return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    }
    return `Bearer ${await this.token(c, scopes, signal)}`;
  }

  /**
   * Handles a 401: learns its challenge and returns the scopes to retry with (widened by the
   * challenge's `scope`, e.g. on `insufficient_scope`), or undefined when a retry cannot help
   * (no credentials for Basic, or the same Basic credentials were already refused).
   */
  async challenged(header: string | null, scopes: readonly string[], sent: string | undefined): Promise<string[] | undefined> {
    const c = pick(parseChallenges(header));
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      if (sent?.startsWith('Basic ')) return undefined;
      this.challenge = c;
      return (await this.credentials()) ? [...scopes] : undefined;
    }
    const next = mergeScopes(...scopes, c.params.scope);
    // The token we sent was refused (expired early, revoked): drop it so the retry fetches a fresh one.
    if (sent?.startsWith('Bearer ')) {
      for (const [k, v] of this.tokens) if (`Bearer ${v.token}` === sent) this.tokens.delete(k);
      this.log.debug('registry refused a bearer token; fetching a new one', { error: c.params.error, scopes: next });
    }
    this.challenge = c;
    return next;
  }

  private async token(c: Challenge, scopes: readonly string[], signal?: AbortSignal): Promise<string> {
    const realm = c.params.realm;
    if (!realm) throw new MosError({ code: 'REGISTRY_PROTOCOL', message: 'Bearer challenge without a realm', hint: 'the registry sent a malformed WWW-Authenticate header' });
    const key = `${realm}\0${c.params.service ?? ''}\0${mergeScopes(...scopes).join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.token;
    // One token request per key at a time: parallel blob fetches share it.
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetchToken(realm, c.params.service, scopes, key, signal).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async fetchToken(realm: string, service: string | undefined, scopes: readonly string[], key: string, signal?: AbortSignal): Promise<string> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: '<token realm>', message: 'Bearer challenge realm is not a URL' });
    }
    if (service) url.searchParams.set('service', service);
    for (const s of mergeScopes(...scopes)) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    const creds = await this.credentials();
    if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    this.log.debug('fetching registry token', { realm: redactUrl(url), scopes: mergeScopes(...scopes) });
    const res = await this.tokenGet(url.href, headers, signal);
    if (res.status === 401 || res.status === 403) {
      throw await responseError(res, url.href, creds ? 'token request (credentials were rejected)' : 'token request (anonymous access refused)', { [res.status]: 'REGISTRY_UNAUTHORIZED' });
    }
    if (res.status !== 200) throw await responseError(res, url.href, 'token request');
    const text = await readTokenBody(res, url);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch (e) {
      throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: 'token response is not a JSON object', cause: e });
    }
    const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: 'token response has no token' });
    const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_EXPIRES_S;
    const issued = typeof doc.issued_at === 'string' ? Date.parse(doc.issued_at) : NaN;
    const start = Number.isNaN(issued) ? this.now() : Math.min(issued, this.now());
    // Renew a little early so a token never expires in flight.
    this.tokens.set(key, { token, expiresAt: start + Math.max(expiresIn * 1000 - 10_000, expiresIn * 500) });
    return token;
  }
}

/**
 * Reads a token response as text, refusing it at the first byte past MAX_TOKEN_RESPONSE (or at once when
 * Content-Length says so): the realm is named by the registry, so its answer is untrusted input.
 */
async function readTokenBody(res: HttpResponse, url: URL): Promise<string> {
  const tooLarge = () => new MosError({ code: 'REGISTRY_PROTOCOL', subject: redactUrl(url), message: `token response is larger than the ${MAX_TOKEN_RESPONSE}-byte limit` });
  if (Number(res.headers.get('content-length') ?? NaN) > MAX_TOKEN_RESPONSE) {
    await res.body?.cancel().catch(() => {}); // refusing it already; a failed cancel changes nothing
    throw tooLarge();
  }
  if (!res.body) return '';
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    try {
      for await (const chunk of res.body) {
        n += chunk.byteLength;
        if (n > MAX_TOKEN_RESPONSE) throw tooLarge();
        parts.push(chunk);
      }
    } catch (e) {
      if (e instanceof MosError) throw e;
      throw networkError(e, url.href, 'token response');
    }
  } finally {
    await res.body.cancel().catch(() => {}); // after EOF or a refusal the rest is not wanted
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Bearer is preferred when a registry offers both. */
function pick(cs: readonly Challenge[]): Challenge | undefined {
  return cs.find((c) => c.scheme === 'bearer') ?? cs.find((c) => c.scheme === 'basic');
}
