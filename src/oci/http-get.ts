import type { Dispatcher } from 'undici';
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
  const { Agent, request } = await import('undici');
  const site = await siteCaPems();
  const { rootCertificates } = await import('node:tls');
  const dispatcher: Dispatcher = new Agent({ connect: site.length ? { ca: [...rootCertificates, ...site] } : {}, headersTimeout: opts.deadlineMs, bodyTimeout: opts.deadlineMs });
  const deadline = AbortSignal.timeout(opts.deadlineMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  try {
    let target = u;
    for (let hop = 0; ; hop++) {
      const r = await request(target, { method: 'GET', dispatcher, signal, headers: { accept: 'application/json, */*' } });
      if (r.statusCode >= 300 && r.statusCode < 400 && typeof r.headers.location === 'string') {
        await r.body.dump();
        if (hop >= 5) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: shown, message: 'more than 5 redirects' });
        target = new URL(r.headers.location, target);
        continue;
      }
      if (r.statusCode < 200 || r.statusCode >= 300) {
        await r.body.dump();
        throw new MosError({ code: r.statusCode === 404 ? 'NOT_FOUND' : 'REGISTRY_ERROR', subject: shown, message: `answered HTTP ${r.statusCode}` });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of r.body as AsyncIterable<Buffer>) {
        size += c.byteLength;
        if (size > opts.maxBytes) {
          r.body.destroy();
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
  } finally {
    await dispatcher.close().catch(() => {});
  }
}
