import * as http from 'node:http';
import type { IncomingMessage } from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { MosError } from '../base/index.js';
import { siteCaPems } from './registry/tls.js';

/** Options of {@link httpGet}. */
export interface HttpGetOptions {
  /** Bytes the body may have; more is refused while it streams. */
  readonly maxBytes: number;
  /** The whole request (connect, reply, body), ms. */
  readonly deadlineMs: number;
  readonly signal?: AbortSignal;
}

/**
 * GETs a small document over http(s) (a site bundle named on the kernel command line: what iPXE-style
 * provisioning serves; its signature, not the transport, makes it trustworthy). TLS trusts the system's
 * CAs and the site bundle's; redirects are followed up to 5 times. REGISTRY_UNREACHABLE for a network
 * failure, REGISTRY_ERROR for a non-2xx answer, OCI_SIZE_EXCEEDS_LIMIT past `maxBytes`, REGISTRY_TIMEOUT
 * past the deadline. The URL in messages never carries user info.
 */
export async function httpGet(url: string, opts: HttpGetOptions): Promise<Uint8Array> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MosError({ code: 'INPUT_INVALID', subject: url, message: 'is not a URL' });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new MosError({ code: 'INPUT_INVALID', subject: url, message: 'only http: and https: URLs are fetched' });
  const shown = `${u.protocol}//${u.host}${u.pathname}`;
  const site = await siteCaPems();
  const ca = site.length ? [...rootCertificates, ...site] : undefined;
  const deadline = AbortSignal.timeout(opts.deadlineMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const get = (target: URL) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const tls = target.protocol === 'https:';
      const req = (tls ? https : http).get(target, { agent: false, signal, headers: { accept: 'application/json, */*' }, ...(tls && ca ? { ca } : {}) }, (res) => {
        res.on('error', () => {}); // read below, or dropped: a reset must not become an uncaught error
        resolve(res);
      });
      req.on('error', reject);
    });
  try {
    let target = u;
    for (let hop = 0; ; hop++) {
      if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: shown, message: `redirected to a ${target.protocol} URL` });
      const r = await get(target);
      const status = r.statusCode ?? 0;
      if (status >= 300 && status < 400 && typeof r.headers.location === 'string') {
        r.destroy();
        if (hop >= 5) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: shown, message: 'more than 5 redirects' });
        target = new URL(r.headers.location, target);
        continue;
      }
      if (status < 200 || status >= 300) {
        r.destroy();
        throw new MosError({ code: status === 404 ? 'NOT_FOUND' : 'REGISTRY_ERROR', subject: shown, message: `answered HTTP ${status}` });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of r as AsyncIterable<Buffer>) {
        size += c.byteLength;
        if (size > opts.maxBytes) {
          r.destroy();
          throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject: shown, message: `body is larger than ${opts.maxBytes} bytes` });
        }
        chunks.push(c);
      }
      return Buffer.concat(chunks);
    }
  } catch (e) {
    if (e instanceof MosError) throw e;
    if (deadline.aborted) throw new MosError({ code: 'REGISTRY_TIMEOUT', subject: shown, message: `no complete answer within ${opts.deadlineMs / 1000} s` });
    const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const why = err.cause?.code ?? err.code ?? err.cause?.message ?? err.message ?? String(e);
    throw new MosError({ code: 'REGISTRY_UNREACHABLE', subject: shown, message: `cannot fetch: ${why}`, cause: e });
  }
}
