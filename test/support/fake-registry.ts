import type { Test } from 'tap';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** One request the fake saw. */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * A hook runs before the built-in registry logic; it returns true when it answered the request
 * (fault injection), false to let the fake answer normally.
 */
export type FakeHook = (req: IncomingMessage, res: ServerResponse, url: URL, fake: FakeRegistry) => boolean | Promise<boolean>;

export interface FakeOptions {
  readonly hook?: FakeHook;
  /** Serve the referrers API (distribution-spec v1.1); default false (404 like distribution 2.8). */
  readonly referrers?: boolean;
  /** Referrers page size (Link rel=next beyond it); default 100. */
  readonly referrersPageSize?: number;
  /** Apply the artifactType filter server-side and say so in OCI-Filters-Applied; default true. */
  readonly applyFilter?: boolean;
  /** Require `Authorization: Bearer` tokens from the fake's own `/token` realm. */
  readonly bearer?: { readonly username: string; readonly password: string; readonly grant?: (scope: string) => string };
  /** Require Basic auth with these credentials. */
  readonly basic?: { readonly username: string; readonly password: string };
  /** Listen on this port of 127.0.0.1 (default: a free one). */
  readonly port?: number;
}

interface StoredManifest {
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** The in-process fake: state is open for tests to seed and inspect. */
export interface FakeRegistry {
  readonly host: string;
  readonly origin: string;
  readonly requests: SeenRequest[];
  readonly blobs: Map<string, Buffer>;
  /** By digest; `tags` maps tag → digest. */
  readonly manifests: Map<string, StoredManifest>;
  readonly tags: Map<string, string>;
  /** Tokens issued: token → granted scopes. */
  readonly tokens: Map<string, string[]>;
  /** Adds a manifest (by digest, optionally tagged) and returns its descriptor. */
  putManifest(mediaType: string, bytes: Buffer | string, tag?: string): { mediaType: string; digest: `sha256:${string}`; size: number };
  putBlob(bytes: Buffer | string): { mediaType: string; digest: `sha256:${string}`; size: number };
}

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function json(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function wireError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { errors: [{ code, message }] }, headers);
}

/**
 * Starts an in-repo fake registry on 127.0.0.1: enough of distribution-spec v1.1 (manifests, blobs
 * with Range, monolithic and chunked uploads, tags, optionally the referrers API and Bearer/Basic
 * auth) to test what docker-registry 2.8.2 lacks, plus a `hook` for faults. Closed in teardown
 * (open connections destroyed first).
 */
export async function startFakeRegistry(t: Test, opts: FakeOptions = {}): Promise<FakeRegistry> {
  const uploads = new Map<string, Buffer>();
  let fake!: FakeRegistry;
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) wireError(res, 500, 'UNKNOWN', String(e));
      else res.destroy();
    });
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', fake.origin);
    fake.requests.push({ method: req.method ?? '', path: url.pathname + url.search, headers: { ...req.headers } });
    if (opts.hook && (await opts.hook(req, res, url, fake))) return;
    if (url.pathname === '/token') return token(req, res, url);
    if (!authorized(req, res, url)) return;
    const m = /^\/v2\/(.+?)\/(manifests|blobs|referrers|tags)\/(.*)$/.exec(url.pathname);
    if (url.pathname === '/v2/' || url.pathname === '/v2') return json(res, 200, {});
    if (!m) return wireError(res, 404, 'NAME_UNKNOWN', 'no route');
    const [, , kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') return manifests(req, res, ref);
    if (kind === 'blobs') return blobs(req, res, url, ref);
    if (kind === 'tags') return json(res, 200, { name: m[1], tags: [...fake.tags.keys()] });
    return referrers(res, url, ref);
  };

  const token = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const b = opts.bearer;
    const given = req.headers.authorization?.startsWith('Basic ') ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString() : undefined;
    if (!b || given !== `${b.username}:${b.password}`) return wireError(res, 401, 'UNAUTHORIZED', 'bad credentials');
    const scopes = url.searchParams.getAll('scope').map((s) => (b.grant ? b.grant(s) : s));
    const tok = randomBytes(12).toString('hex');
    fake.tokens.set(tok, scopes);
    return json(res, 200, { access_token: tok, expires_in: 300 });
  };

  const authorized = (req: IncomingMessage, res: ServerResponse, url: URL): boolean => {
    const h = req.headers.authorization ?? '';
    if (opts.basic) {
      if (h === `Basic ${Buffer.from(`${opts.basic.username}:${opts.basic.password}`).toString('base64')}`) return true;
      wireError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': 'Basic realm="fake"' });
      return false;
    }
    if (!opts.bearer || url.pathname === '/v2/' && h === '') {
      if (opts.bearer) wireError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': `Bearer realm="${fake.origin}/token",service="fake"` });
      return !opts.bearer;
    }
    const name = /^\/v2\/(.+?)\/(manifests|blobs|referrers|tags)\//.exec(url.pathname)?.[1] ?? '';
    const needed = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
    const want = needed === 'pull' ? `repository:${name}:pull` : `repository:${name}:pull,push`;
    const granted = h.startsWith('Bearer ') ? fake.tokens.get(h.slice(7)) : undefined;
    const ok = granted?.some((s) => s.startsWith(`repository:${name}:`) && s.slice(s.lastIndexOf(':') + 1).split(',').includes(needed));
    if (ok) return true;
    const challenge = `Bearer realm="${fake.origin}/token",service="fake",scope="${want}"${granted ? ',error="insufficient_scope"' : ''}`;
    wireError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': challenge });
    return false;
  };

  const manifests = async (req: IncomingMessage, res: ServerResponse, ref: string) => {
    if (req.method === 'PUT') {
      const bytes = await readBody(req);
      const d = fake.putManifest(String(req.headers['content-type']), bytes, ref.startsWith('sha256:') ? undefined : ref);
      const subject = (JSON.parse(bytes.toString()) as { subject?: { digest: string } }).subject;
      res.writeHead(201, { location: `/v2/x/manifests/${d.digest}`, 'docker-content-digest': d.digest, ...(subject && opts.referrers ? { 'oci-subject': subject.digest } : {}) });
      return res.end();
    }
    const digest = ref.startsWith('sha256:') ? ref : fake.tags.get(ref);
    const m = digest ? fake.manifests.get(digest) : undefined;
    if (!m || !digest) return wireError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    res.writeHead(200, { 'content-type': m.mediaType, 'content-length': m.bytes.length, 'docker-content-digest': digest });
    res.end(req.method === 'HEAD' ? undefined : m.bytes);
  };

  const blobs = async (req: IncomingMessage, res: ServerResponse, url: URL, ref: string) => {
    if (ref.startsWith('uploads/')) return upload(req, res, url, ref.slice('uploads/'.length));
    const b = fake.blobs.get(ref);
    if (!b) return wireError(res, 404, 'BLOB_UNKNOWN', 'blob unknown');
    const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Number(range[2]) : b.length - 1;
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${b.length}`, 'docker-content-digest': ref });
      return res.end(req.method === 'HEAD' ? undefined : b.subarray(start, end + 1));
    }
    res.writeHead(200, { 'content-length': b.length, 'docker-content-digest': ref, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : b);
  };

  const upload = async (req: IncomingMessage, res: ServerResponse, url: URL, id: string) => {
    if (req.method === 'POST') {
      const mount = url.searchParams.get('mount');
      if (mount && fake.blobs.has(mount)) {
        res.writeHead(201, { location: `/v2/x/blobs/${mount}`, 'docker-content-digest': mount });
        return res.end();
      }
      const nid = randomBytes(6).toString('hex');
      uploads.set(nid, Buffer.alloc(0));
      await readBody(req);
      // A relative Location with a query, as distribution writes it (`_state=`).
      res.writeHead(202, { location: `/v2/x/blobs/uploads/${nid}?_state=${nid}%3D%3D`, range: '0-0' });
      return res.end();
    }
    const have = uploads.get(id);
    if (have === undefined) return wireError(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'upload unknown');
    if (url.searchParams.get('_state') !== `${id}==`) return wireError(res, 400, 'BLOB_UPLOAD_INVALID', 'query was altered');
    if (req.method === 'DELETE') {
      uploads.delete(id);
      res.writeHead(204);
      return res.end();
    }
    const body = await readBody(req);
    const all = Buffer.concat([have, body]);
    if (req.method === 'PATCH') {
      const cr = /^(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
      if (cr && Number(cr[1]) !== have.length) return wireError(res, 416, 'BLOB_UPLOAD_INVALID', 'out of order');
      uploads.set(id, all);
      res.writeHead(202, { location: `/v2/x/blobs/uploads/${id}?_state=${id}%3D%3D`, range: `0-${all.length - 1}` });
      return res.end();
    }
    if (req.method === 'PUT') {
      const want = url.searchParams.get('digest');
      if (want !== digestOf(all)) return wireError(res, 400, 'DIGEST_INVALID', 'digest mismatch');
      uploads.delete(id);
      fake.blobs.set(want, all);
      res.writeHead(201, { location: `/v2/x/blobs/${want}`, 'docker-content-digest': want });
      return res.end();
    }
    return wireError(res, 405, 'UNSUPPORTED', 'method');
  };

  const referrers = (res: ServerResponse, url: URL, digest: string) => {
    if (!opts.referrers) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 page not found\n');
      return;
    }
    const type = url.searchParams.get('artifactType');
    const filter = opts.applyFilter ?? true;
    const all = [...fake.manifests.entries()].flatMap(([d, m]) => {
      const doc = JSON.parse(m.bytes.toString()) as { subject?: { digest: string }; artifactType?: string; config?: { mediaType: string }; annotations?: Record<string, string> };
      if (doc.subject?.digest !== digest) return [];
      const artifactType = doc.artifactType ?? doc.config?.mediaType;
      return [{ mediaType: m.mediaType, digest: d, size: m.bytes.length, artifactType, ...(doc.annotations ? { annotations: doc.annotations } : {}) }];
    });
    const list = type && filter ? all.filter((d) => d.artifactType === type) : all;
    const size = opts.referrersPageSize ?? 100;
    const page = Number(url.searchParams.get('page') ?? 0);
    const headers: Record<string, string> = {};
    if (type && filter) headers['oci-filters-applied'] = 'artifactType';
    if ((page + 1) * size < list.length) {
      const next = new URLSearchParams(url.searchParams);
      next.set('page', String(page + 1));
      headers.link = `<${url.pathname}?${next}>; rel="next"`;
    }
    json(res, 200, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: list.slice(page * size, (page + 1) * size) }, { ...headers, 'content-type': 'application/vnd.oci.image.index.v1+json' });
  };

  server.listen(opts.port ?? 0, '127.0.0.1');
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e as Error))]);
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  fake = {
    host: `127.0.0.1:${port}`,
    origin: `http://127.0.0.1:${port}`,
    requests: [],
    blobs: new Map(),
    manifests: new Map(),
    tags: new Map(),
    tokens: new Map(),
    putManifest(mediaType, bytes, tag) {
      const b = Buffer.from(bytes);
      const digest = digestOf(b);
      fake.manifests.set(digest, { mediaType, bytes: b });
      if (tag !== undefined) fake.tags.set(tag, digest);
      return { mediaType, digest, size: b.length };
    },
    putBlob(bytes) {
      const b = Buffer.from(bytes);
      const digest = digestOf(b);
      fake.blobs.set(digest, b);
      return { mediaType: 'application/octet-stream', digest, size: b.length };
    },
  };
  return fake;
}
