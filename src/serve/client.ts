import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { MosError, type ErrorCode, type OnProgress } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { isTerminal, type Operation, type OperationError } from '../machine/index.js';
import { MAX_PEM_BYTES } from '../trust/index.js';

/** How `mosctl --server URL --cert C --key K --ca CA` reaches a machine's upgrade API. */
export interface ClientOptions {
  readonly server: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA the server's certificate must chain to (the server name is checked too). */
  readonly caFile: string;
  readonly timeoutMs?: number;
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** An upgrade API client over mutual TLS; answers are the same objects the local commands return. */
export class ApiClient {
  private constructor(
    private readonly base: URL,
    private readonly agent: Agent,
    private readonly timeoutMs: number,
  ) {}

  static async open(opts: ClientOptions): Promise<ApiClient> {
    let base: URL;
    try {
      base = new URL(opts.server);
    } catch {
      throw new MosError({ code: 'USAGE', subject: `--server ${opts.server}`, message: 'is not a URL', hint: 'use https://HOST:PORT' });
    }
    if (base.protocol !== 'https:') throw new MosError({ code: 'USAGE', subject: `--server ${opts.server}`, message: 'must be https:// (the API is mutual TLS only)' });
    if (base.username || base.password) throw new MosError({ code: 'USAGE', subject: '--server', message: 'must not carry credentials; the client certificate authenticates' });
    const [cert, key, ca] = await Promise.all([opts.certFile, opts.keyFile, opts.caFile].map((f) => readFileLimited(f, MAX_PEM_BYTES)));
    const timeout = opts.timeoutMs ?? 30_000;
    const agent = new Agent({ cert, key, ca, minVersion: 'TLSv1.2', keepAlive: true, maxSockets: 4 });
    return new ApiClient(base, agent, timeout);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** One request; an error answer is thrown as the MosError the server reported (same code, same exit). */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const url = new URL(path, this.base);
    const payload = body !== undefined ? JSON.stringify(body) : undefined;
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(url, {
          method,
          agent: this.agent,
          headers: { accept: 'application/json', ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}), ...headers },
        }, (r) => {
          r.on('error', () => {}); // read below; a reset surfaces there
          resolve(r);
        });
        req.setTimeout(this.timeoutMs, () => req.destroy(Object.assign(new Error(`no answer for ${this.timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
        req.on('error', reject);
        req.end(payload);
      });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      throw new MosError({
        code: 'API_UNREACHABLE',
        subject: this.base.origin,
        message: `cannot reach the upgrade API: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' ').trim(),
        hint: 'check --server, and that --cert/--key are a client certificate the machine trusts and --ca signed its server certificate',
        cause: e,
      });
    }
    const status = res.statusCode ?? 0;
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > MAX_RESPONSE_BYTES) {
          res.destroy();
          throw new MosError({ code: 'API_UNREACHABLE', subject: url.pathname, message: `the answer is larger than ${MAX_RESPONSE_BYTES} bytes` });
        }
        chunks.push(c);
      }
    } catch (e) {
      if (e instanceof MosError) throw e;
      const err = e as { code?: string; message?: string };
      throw new MosError({ code: 'API_UNREACHABLE', subject: `${method} ${url.pathname}`, message: `the answer broke off: ${err.code ?? err.message ?? String(e)}`, cause: e });
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text.length ? JSON.parse(text) : undefined;
    } catch {
      throw new MosError({ code: 'API_UNREACHABLE', subject: `${method} ${url.pathname}`, message: `the server answered ${status} with a body that is not JSON` });
    }
    if (status >= 400) {
      const e = (parsed as { error?: OperationError } | undefined)?.error;
      if (!e || typeof e.code !== 'string') throw new MosError({ code: 'API_UNREACHABLE', subject: `${method} ${url.pathname}`, message: `the server answered ${status}` });
      throw remoteError(e);
    }
    return parsed as T;
  }

  /**
   * Waits for an operation to finish, polling its resource, and reports its download progress through
   * `onProgress` (as blob events named by target). Returns the finished operation.
   */
  async follow(id: string, opts: { onProgress?: OnProgress; intervalMs?: number; signal?: AbortSignal } = {}): Promise<Operation> {
    for (;;) {
      const op = await this.call<Operation>('GET', `/v1/operations/${encodeURIComponent(id)}`);
      if (op.progress) opts.onProgress?.({ kind: 'transfer', total: op.progress.bytesTotal, items: op.progress.targets.length });
      for (const t of op.progress?.targets ?? []) opts.onProgress?.({ kind: 'blob', digest: t.name, done: t.bytesDone, total: t.bytesTotal, label: t.name });
      if (isTerminal(op.phase)) return op;
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          clearTimeout(timer);
          // Following stops; the operation is the server's and goes on until it ends or is canceled.
          reject(new MosError({ code: 'CANCELED', message: `stopped following operation ${id}, which goes on on the server (cancel it with: mosctl --server … operations ${id} --cancel)` }));
        };
        const timer = setTimeout(() => (opts.signal?.removeEventListener('abort', stop), resolve()), opts.intervalMs ?? 250);
        if (opts.signal?.aborted) stop();
        else opts.signal?.addEventListener('abort', stop, { once: true });
      });
    }
  }

  /** The result of a finished operation, or its error thrown as the MosError it was. */
  static resultOf<T>(op: Operation): T {
    if (op.error) throw remoteError(op.error);
    if (op.phase === 'interrupted') throw new MosError({ code: 'API_UNREACHABLE', subject: `operation ${op.id}`, message: op.interrupted?.message ?? 'was interrupted' });
    return op.result as T;
  }
}

function remoteError(e: OperationError): MosError {
  return new MosError({ code: e.code as ErrorCode, message: e.message, ...(e.subject ? { subject: e.subject } : {}), ...(e.hint ? { hint: e.hint } : {}) });
}
