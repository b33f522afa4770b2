import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { MosError, describeSystemError } from '../../base/index.js';
import { readFileLimited } from '../../host/index.js';
import type { ResolvedOptions } from './options.js';

/** A registry CA bundle is a few KiB; 1 MiB (like every PEM input) refuses a mistaken or endless file. */
const MAX_CA_FILE_BYTES = 1024 * 1024;

/** undici, loaded on the first registry request (about 70 ms of start-up that layout-only runs skip). */
const undici = () => import('undici');

// Statuses whose responses carry no body (RFC 9110); the Response constructor refuses one for them.
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

// A pull-based web stream over a Node readable (Readable.toWeb on Node 20 can enqueue after a cancel).
function webStream(body: AsyncIterable<Buffer> & { destroy(error?: Error): void }): ReadableStream<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await it.next();
        if (done) controller.close();
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      } catch (e) {
        controller.error(e);
      }
    },
    cancel(reason) {
      body.destroy(reason instanceof Error ? reason : undefined);
    },
  });
}

/**
 * A `fetch` on undici's `request` API with the Agent below. Not WHATWG fetch itself: fetch refuses the
 * "bad ports" of the Fetch standard (10080, 6000, 5060, ...), where skopeo and oras reach any registry.
 * Redirects are never followed here (the transport follows and checks them itself).
 */
export async function defaultFetch(): Promise<typeof fetch> {
  // undici's own Headers and Response (already loaded with it), not the globals: touching those loads
  // node's second, internal copy of undici (about 15 ms of a CLI start).
  const { request, Headers, Response } = await undici();
  const fetchLike = async (url: string, init: { method?: string; headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal; dispatcher?: Dispatcher }): Promise<Response> => {
    const r = await request(url, {
      method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: init.headers ?? {},
      body: init.body === undefined ? null : Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength),
      ...(init.signal ? { signal: init.signal } : {}),
      ...(init.dispatcher ? { dispatcher: init.dispatcher } : {}),
    });
    const headers = new Headers();
    for (const [k, v] of Object.entries(r.headers)) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
    }
    if (init.method === 'HEAD' || NULL_BODY_STATUSES.has(r.statusCode)) {
      await r.body.dump();
      return new Response(null, { status: r.statusCode, headers }) as unknown as globalThis.Response;
    }
    return new Response(webStream(r.body), { status: r.statusCode, headers }) as unknown as globalThis.Response;
  };
  return fetchLike as unknown as typeof fetch;
}

/** The Debian/Ubuntu system bundle, trusted with `caFiles` (Node's default store is Mozilla's). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

// One Agent per CA set and timeout pair, shared by every repository (connection reuse).
const agents = new Map<string, Promise<Dispatcher>>();

/**
 * The undici dispatcher for these options: an Agent trusting the system CAs plus `caFiles`, with
 * undici's own header/body timeouts set just past ours as a backstop. Undefined when an injected
 * `fetch` needs no extra CAs. Throws HOST_IO for an unreadable CA file, INPUT_INVALID for a non-PEM one.
 */
export function dispatcherFor(opts: ResolvedOptions): Promise<Dispatcher | undefined> {
  if (opts.fetch && opts.caFiles.length === 0 && opts.caPems.length === 0) return Promise.resolve(undefined);
  const key = [opts.requestTimeoutMs, opts.stallTimeoutMs, ...opts.caFiles, ...opts.caPems].join('\0');
  let p = agents.get(key);
  if (!p) {
    p = makeAgent(opts);
    agents.set(key, p);
    p.catch(() => agents.delete(key));
  }
  return p;
}

/**
 * The PEM text of registry CA files (each at most 1 MiB): HOST_IO naming an unreadable one,
 * INPUT_INVALID naming one that holds no certificate. Read by whoever has the right to read them
 * (root, for the unprivileged downloader, which gets the text).
 */
export async function readCaFiles(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    let pem: string;
    try {
      pem = (await readFileLimited(file, MAX_CA_FILE_BYTES)).toString('utf8');
    } catch (e) {
      if (e instanceof MosError) throw e;
      throw new MosError({ code: 'HOST_IO', subject: file, message: `cannot read registry CA file: ${describeSystemError(e)}`, cause: e });
    }
    checkPem(pem, file);
    out.push(pem);
  }
  return out;
}

function checkPem(pem: string, subject: string): void {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: 'registry CA file holds no PEM certificate', hint: 'pass a PEM file with one or more CERTIFICATE blocks' });
  }
}

/**
 * The site bundle's transport CAs (README "Site bundles"; mosctl writes them from the bundle in force), trusted
 * for registry TLS besides the system's. Same path as SITE_FILES.caBundle in src/machine. Absent: none.
 */
export const SITE_CA_FILE = '/etc/mosctl/site/ca.pem';

/** The PEM text of {@link SITE_CA_FILE} as a list (empty when there is none). */
export async function siteCaPems(): Promise<string[]> {
  try {
    return await readCaFiles([SITE_CA_FILE]);
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') return [];
    throw e;
  }
}

async function makeAgent(opts: ResolvedOptions): Promise<Dispatcher> {
  const { Agent } = await undici();
  const timeouts = { headersTimeout: opts.requestTimeoutMs + 1000, bodyTimeout: opts.stallTimeoutMs + 1000 };
  const site = await siteCaPems();
  if (opts.caFiles.length === 0 && opts.caPems.length === 0 && site.length === 0) return new Agent(timeouts);
  const ca: string[] = [...rootCertificates];
  const system = await readFile(SYSTEM_BUNDLE, 'utf8').catch(() => undefined);
  if (system) ca.push(system);
  for (const pem of opts.caPems) checkPem(pem, 'registry CA');
  ca.push(...(await readCaFiles(opts.caFiles)), ...opts.caPems, ...site);
  return new Agent({ ...timeouts, connect: { ca } });
}
