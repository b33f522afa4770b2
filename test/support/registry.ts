import type { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';

/** A docker-registry (CNCF distribution 2.8.2) started for one test, bound to 127.0.0.1. */
export interface Registry {
  /** `127.0.0.1:<port>` */
  readonly host: string;
  readonly pid: number;
  readonly dir: string;
  /** PEM of the TLS certificate (also its CA), when started with `tls`. */
  readonly caFile?: string;
  /** The htpasswd user, when started with `basic`. */
  readonly user?: { readonly username: string; readonly password: string };
  /** For `token`: what the token server was asked. */
  readonly tokenRequests?: TokenServer['requests'];
}

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface StartRegistryOptions {
  readonly auth?: RegistryAuth;
  readonly tls?: boolean;
  /** For `token`: repositories and the actions granted to anyone (default `pull,push` on everything). */
  readonly grant?: (scope: { type: string; name: string; actions: string[] }, basicUser: string | undefined) => string[];
  /** Run as a pull-through cache of this registry URL (distribution's `proxy: remoteurl`). */
  readonly proxy?: string;
}

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

/** A self-signed certificate for 127.0.0.1 (its own CA). Returns [certFile, keyFile]. */
export function makeTlsCert(dir: string, name = 'tls'): [string, string] {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], dir);
  return [join(dir, `${name}.pem`), join(dir, `${name}.key`)];
}

/**
 * Starts Debian's `docker-registry` with its own config in a temp dir: plain, htpasswd Basic
 * (`mosuser`/`s3cret`), TLS from a fresh self-signed cert, or token auth backed by a small in-process
 * token server. The process is killed by PID and the dir removed in teardown.
 */
export async function startRegistry(t: Test, opts: StartRegistryOptions = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'mosctl-registry-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const auth = opts.auth ?? 'none';
  const lines = [
    'version: 0.1',
    'log: { level: error, accesslog: { disabled: true }, fields: { service: registry } }',
    'storage:',
    `  filesystem: { rootdirectory: ${join(dir, 'data')} }`,
    '  delete: { enabled: true }',
    'health: { storagedriver: { enabled: false } }',
  ];
  let user: Registry['user'];
  let tokenRequests: TokenServer['requests'] | undefined;
  if (auth === 'basic') {
    user = { username: 'mosuser', password: 's3cret' };
    const r = spawnSync('htpasswd', ['-Bbn', user.username, user.password]);
    if (r.status !== 0) throw new Error('htpasswd failed');
    await writeFile(join(dir, 'htpasswd'), r.stdout);
    lines.push(`auth: { htpasswd: { realm: mosctl-test, path: ${join(dir, 'htpasswd')} } }`);
  } else if (auth === 'token') {
    const token = await startTokenServer(t, dir, opts.grant);
    tokenRequests = token.requests;
    lines.push(`auth: { token: { realm: "${token.realm}", service: mosctl-registry, issuer: mosctl-test-issuer, rootcertbundle: ${token.certFile} } }`);
  }
  if (opts.proxy) lines.push(`proxy: { remoteurl: "${opts.proxy}" }`);
  let caFile: string | undefined;
  if (opts.tls) {
    const [cert, key] = makeTlsCert(dir);
    caFile = cert;
    lines.push(`http: { addr: 127.0.0.1:${port}, secret: ${randomBytes(8).toString('hex')}, tls: { certificate: ${cert}, key: ${key} } }`);
  } else {
    lines.push(`http: { addr: 127.0.0.1:${port}, secret: ${randomBytes(8).toString('hex')} }`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, lines.join('\n') + '\n');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  try {
    await waitForPort(port);
  } catch (e) {
    throw new Error(`docker-registry did not start: ${(e as Error).message}\n${stderr}`);
  }
  return { host: `127.0.0.1:${port}`, pid: child.pid ?? -1, dir, ...(caFile ? { caFile } : {}), ...(user ? { user } : {}), ...(tokenRequests ? { tokenRequests } : {}) };
}

/** A token server for distribution's `auth.token`: ES256 JWTs whose x5c is a fresh self-signed cert. */
export interface TokenServer {
  readonly realm: string;
  readonly certFile: string;
  /** Every request seen: the scopes asked for and whether Basic credentials came along. */
  readonly requests: { scopes: string[]; user: string | undefined }[];
}

/** Starts the token server on 127.0.0.1 (closed in teardown). Grants `pull,push` on everything unless `grant` says otherwise. */
export async function startTokenServer(t: Test, dir: string, grant?: StartRegistryOptions['grant'], expiresIn = 300): Promise<TokenServer> {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'token.key', '-out', 'token.pem', '-days', '2', '-subj', '/CN=mosctl-token'], dir);
  const certFile = join(dir, 'token.pem');
  const certPem = await readFile(certFile, 'utf8');
  const key = createPrivateKey(await readFile(join(dir, 'token.key'), 'utf8'));
  const der = new X509Certificate(certPem).raw.toString('base64');
  const requests: TokenServer['requests'] = [];
  const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    const authz = req.headers.authorization;
    const user = authz?.startsWith('Basic ') ? Buffer.from(authz.slice(6), 'base64').toString().split(':')[0] : undefined;
    requests.push({ scopes, user });
    const access = scopes.map((s) => {
      const last = s.lastIndexOf(':');
      const first = s.indexOf(':');
      const scope = { type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',') };
      return { type: scope.type, name: scope.name, actions: grant ? grant(scope, user) : scope.actions };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [der] };
    const claims = { iss: 'mosctl-test-issuer', sub: user ?? '', aud: url.searchParams.get('service'), exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ token: `${input}.${b64u(sig)}`, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  const port = (server.address() as AddressInfo).port;
  return { realm: `http://127.0.0.1:${port}/token`, certFile, requests };
}

/** sha256 digest string of bytes (test helper). */
export function digestOf(b: Uint8Array | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}
