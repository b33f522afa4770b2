import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { ajv } from './schema.js';
import openapi from '../../src/serve/openapi.json' with { type: 'json' };

// Upgrade API test support: certificates made by the openssl command line (an independent
// implementation, not mosctl's own issuer), a client that speaks mutual TLS, and a validator that
// checks every answer against the committed OpenAPI document.

const run = promisify(execFile);

const CNF = (dir: string) => `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = testca
[testca]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[anything]
commonName = optional
organizationName = optional
organizationalUnitName = optional
`;

/** One certificate and its key, as PEM files. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface ClientCertOptions {
  /** `O=` values (roles); none by default. */
  readonly orgs?: readonly string[];
  readonly ous?: readonly string[];
  /** openssl ca dates (YYYYMMDDHHMMSSZ); default now … +30 days. */
  readonly startdate?: string;
  readonly enddate?: string;
  /** Extension lines; default a TLS client leaf (CA:FALSE, digitalSignature, EKU clientAuth). */
  readonly ext?: readonly string[];
  /** Who signs: the API client CA (default), an unrelated CA, or the key itself. */
  readonly signer?: 'client-ca' | 'foreign' | 'self';
}

export const CLIENT_EXT = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'];

export interface ApiPki {
  readonly dir: string;
  /** The API client CA (what the server trusts for clients). */
  readonly clientCa: string;
  /** The CA of the server certificate (what clients trust). */
  readonly serverCa: string;
  readonly server: CertFiles;
  client(name: string, opts?: ClientCertOptions): Promise<CertFiles>;
}

async function openssl(args: readonly string[]): Promise<void> {
  await run('openssl', args, { maxBuffer: 1 << 20 });
}

async function makeCa(dir: string, cn: string): Promise<{ dir: string; cert: string; key: string; cnf: string }> {
  mkdirSync(join(dir, 'newcerts'), { recursive: true });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(cnf, CNF(dir));
  const key = join(dir, 'ca.key');
  const cert = join(dir, 'ca.pem');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await openssl(['req', '-x509', '-new', '-config', cnf, '-extensions', 'v3_ca', '-key', key, '-subj', `/CN=${cn}`, '-days', '3650', '-sha256', '-out', cert]);
  return { dir, cert, key, cnf };
}

async function leaf(
  ca: { dir: string; cert: string; key: string; cnf: string } | undefined,
  dir: string,
  name: string,
  subj: string,
  ext: readonly string[],
  dates: { startdate?: string; enddate?: string } = {},
): Promise<CertFiles> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext.join('\n') + '\n');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  if (!ca) {
    const cnf = join(dir, `${name}.cnf`);
    writeFileSync(cnf, `${CNF(dir)}\n[leaf]\n${ext.join('\n')}\n`);
    await openssl(['req', '-x509', '-new', '-config', cnf, '-extensions', 'leaf', '-key', key, '-subj', subj, '-days', '30', '-sha256', '-out', cert]);
    return { cert, key };
  }
  await openssl(['req', '-new', '-config', ca.cnf, '-key', key, '-subj', subj, '-out', csr]);
  await openssl([
    'ca', '-batch', '-config', ca.cnf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert, '-notext', '-preserveDN', '-extfile', extFile,
    ...(dates.startdate ? ['-startdate', dates.startdate] : []),
    ...(dates.enddate ? ['-enddate', dates.enddate] : ['-days', '30']),
  ]);
  return { cert, key };
}

/** Mints the API PKI under `dir`: client CA, a foreign CA, a server CA and a server cert for 127.0.0.1. */
export async function mintApiPki(dir: string): Promise<ApiPki> {
  const [clientCa, foreignCa, serverCa] = await Promise.all([
    makeCa(join(dir, 'client-ca'), 'mosctl test API client CA'),
    makeCa(join(dir, 'foreign-ca'), 'some other CA'),
    makeCa(join(dir, 'server-ca'), 'mosctl test API server CA'),
  ]);
  const leaves = join(dir, 'leaves');
  mkdirSync(leaves, { recursive: true });
  const server = await leaf(serverCa, leaves, 'server', '/CN=localhost', [
    'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return {
    dir,
    clientCa: clientCa.cert,
    serverCa: serverCa.cert,
    server,
    client: async (name, o = {}) => {
      const subj = [...(o.orgs ?? []).map((v) => `/O=${v}`), ...(o.ous ?? []).map((v) => `/OU=${v}`), `/CN=${name}`].join('');
      const signer = o.signer ?? 'client-ca';
      const ca = signer === 'self' ? undefined : signer === 'foreign' ? foreignCa : clientCa;
      return leaf(ca, leaves, name, subj, o.ext ?? CLIENT_EXT, { ...(o.startdate ? { startdate: o.startdate } : {}), ...(o.enddate ? { enddate: o.enddate } : {}) });
    },
  };
}

/** What one API call answered (or the transport error when there was no HTTP answer). */
export interface ApiAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: unknown;
}

/** A mutual-TLS client for one certificate (or none); close() in teardown. */
export interface TestClient {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer>;
  close(): Promise<void>;
}

export function testClient(t: Test, url: string, pki: ApiPki, cert?: CertFiles): TestClient {
  const agent = new Agent({
    connect: { ca: readFileSync(pki.serverCa), ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}) },
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await agent.close().catch(() => {});
  };
  t.teardown(close);
  return {
    close,
    call: async (method, path, body, headers = {}) => {
      const res = await request(new URL(path, url), {
        method: method as 'GET',
        dispatcher: agent,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.body.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.statusCode, headers: res.headers, text, json };
    },
  };
}


/**
 * Checks an answer against the OpenAPI document: the status must be documented for the operation and
 * a JSON body must match its schema. Returns the problems ([] when it conforms).
 */
export function conformance(method: string, path: string, a: ApiAnswer): string[] {
  const doc = openapi as unknown as { paths: Record<string, Record<string, { responses: Record<string, { $ref?: string; content?: Record<string, unknown> }> }>> };
  const templ = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(path.split('?')[0]!));
  if (!templ) return [`${path} is not in the document`];
  const op = doc.paths[templ]![method.toLowerCase()];
  if (!op) return [`${method} ${templ} is not in the document`];
  const r = op.responses[String(a.status)];
  if (!r) return [`${method} ${templ} does not document status ${a.status}`];
  const ref = r.$ref
    ? 'openapi.json#/components/schemas/Error'
    : r.content?.['application/json']
      ? `openapi.json#/paths/${templ.replace(/~/g, '~0').replace(/\//g, '~1')}/${method.toLowerCase()}/responses/${a.status}/content/application~1json/schema`
      : undefined;
  if (!ref) return [];
  const validate = ajv.getSchema(ref);
  if (!validate) return [`no schema at ${ref}`];
  return validate(a.json) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** A `mosctl serve` process started by a test (stopped by its PID in teardown). */
export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  /** The server's JSON log lines so far. */
  readonly log: () => string;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts the built `mosctl serve` on a free loopback port and waits until it listens. */
export async function spawnServer(t: Test, opts: { root: string; api: ApiPki; args?: readonly string[] }): Promise<ServerProcess> {
  const { spawn } = await import('node:child_process');
  const { childEnv, cliPath, plainNode } = await import('./cli.js');
  const [cmd, argv] = plainNode([
    cliPath('mosctl'), '--root', opts.root, 'serve', '--listen', '127.0.0.1:0',
    '--tls-cert', opts.api.server.cert, '--tls-key', opts.api.server.key, '--client-ca', opts.api.clientCa, ...(opts.args ?? []),
  ]);
  const child = spawn(cmd, argv, { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (exited) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exit;
    clearTimeout(timer);
  };
  t.teardown(() => stop('SIGTERM'));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mosctl serve did not start:\n${log}`)), 30_000);
    child.stderr.on('data', (b: Buffer) => {
      log += b.toString();
      const m = /"msg":"serving the upgrade API","url":"(https:\/\/[^"]+)"/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mosctl serve exited with ${code}:\n${log}`));
    });
  });
  return { url, pid: child.pid!, log: () => log, stop };
}

/** Polls an operation until `done(op)` holds (or the timeout passes). */
export async function waitOperation(c: TestClient, id: string, done: (op: { phase: string; progress?: { bytesDone: number } }) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown> & { phase: string }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const a = await c.call('GET', `/v1/operations/${id}`);
    const op = a.json as Record<string, unknown> & { phase: string; progress?: { bytesDone: number } };
    if (done(op)) return op;
    if (Date.now() > until) throw new Error(`operation ${id} still ${op.phase} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
