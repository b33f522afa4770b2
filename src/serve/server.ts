import { createServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { MosError, isMosError, type Logger } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { OperationEngine, systemPaths, type EngineOptions } from '../machine/index.js';
import { MAX_PEM_BYTES, parseCaBundle, verifyClientChain, type ClientIdentity, type TrustAnchors } from '../trust/index.js';
import { buildApp, type AppLimits } from './app.js';

/** Resource limits of the server; every one has a default a slow or hostile client cannot get around. */
export interface ServeLimits extends AppLimits {
  /** Time to complete the TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** Time to receive a request's headers (slowloris), and the whole request. */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** A connection that moves no byte this long is closed (event streams send a comment every 15 s). */
  readonly idleTimeoutMs: number;
  /** Keep-alive between requests. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections at most; more are refused at accept. */
  readonly maxConnections: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  bodyBytes: 64 * 1024,
  rateMax: 600,
  rateWindowMs: 60_000,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 256,
};

export interface ServeOptions extends EngineOptions {
  /** Address to bind (default 127.0.0.1); ignored with `fd`. */
  readonly host?: string;
  readonly port?: number;
  /** Listen on an inherited socket (systemd socket activation: fd 3). */
  readonly fd?: number;
  /** PEM files: server certificate (chain), its key, and the CA client certificates must chain to. */
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly clientCaFile?: string;
  readonly limits?: Partial<ServeLimits>;
  readonly log: Logger;
}

export interface RunningServer {
  /** `https://HOST:PORT`. */
  readonly url: string;
  readonly port: number;
  readonly engine: OperationEngine;
  /** Stops accepting, waits for the running operation to reach a phase boundary, closes connections. */
  close(): Promise<void>;
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFileLimited(file, MAX_PEM_BYTES);
  } catch (e) {
    if (isMosError(e, 'NOT_FOUND')) throw new MosError({ code: 'NOT_FOUND', subject: file, message: `the ${what} is missing`, hint: 'see README "The upgrade API" for the files serve needs', cause: e });
    throw e;
  }
}

/** The chain a client sent, leaf first, as DER (Node links each certificate to its issuer). */
function peerChain(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  let c = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  while (c?.raw && out.length < 8 && !out.some((d) => d.equals(c!.raw!))) {
    out.push(c.raw);
    c = c.issuerCertificate as typeof c;
  }
  return out;
}

/**
 * `mosctl serve`: the upgrade API over HTTPS with mutual TLS (TLS 1.2 or later). OpenSSL checks the
 * client chain during the handshake (no certificate, an unknown CA, an expired one, a wrong EKU: the
 * handshake fails); then every connection's chain is checked again with the manifest path rules
 * (src/trust), which also refuse what OpenSSL lets through (a CA:TRUE leaf, weak keys, SHA-1), and the
 * connection is closed before any request is read if it fails.
 */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const p = systemPaths(opts.root);
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.log;
  const clientCaFile = opts.clientCaFile ?? p.apiClientCa;
  const [cert, key, clientCa] = await Promise.all([
    readPem(opts.certFile ?? p.apiServerCert, 'API server certificate'),
    readPem(opts.keyFile ?? p.apiServerKey, 'API server key'),
    readPem(clientCaFile, 'API client CA'),
  ]);
  const anchors: TrustAnchors = parseCaBundle(clientCa, clientCaFile);
  const engine = await OperationEngine.open(opts);
  const identities = new WeakMap<TLSSocket, ClientIdentity>();
  // Idle connections, by the bytes they moved: Node's socket timeouts do not fire on a TLS connection
  // of an https server that never sends a request, so a sweep closes any that moved nothing for
  // idleTimeoutMs (event streams send a comment every 15 s and so stay open).
  const idle = new Map<TLSSocket, { bytes: number; since: number }>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [s, st] of idle) {
      const bytes = s.bytesRead + s.bytesWritten;
      if (bytes !== st.bytes) {
        st.bytes = bytes;
        st.since = now;
      } else if (now - st.since >= limits.idleTimeoutMs) s.destroy();
    }
  }, Math.max(100, Math.min(1000, limits.idleTimeoutMs / 4)));
  sweep.unref();

  let server: HttpsServer | undefined;
  const app = await buildApp({
    root: opts.root,
    engine,
    identityOf: (s) => identities.get(s),
    limits,
    log,
    serverFactory: (handler) => {
      server = createServer(
        {
          cert,
          key,
          ca: clientCa,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          handshakeTimeout: limits.handshakeTimeoutMs,
          headersTimeout: limits.headersTimeoutMs,
          requestTimeout: limits.requestTimeoutMs,
          keepAliveTimeout: limits.keepAliveTimeoutMs,
          // How often Node checks the two timeouts above (default 30 s would let slowloris linger).
          connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
        },
        handler,
      );
      server.maxConnections = limits.maxConnections;
      server.on('secureConnection', (socket: TLSSocket) => {
        idle.set(socket, { bytes: 0, since: Date.now() });
        socket.once('close', () => idle.delete(socket));
        try {
          identities.set(socket, verifyClientChain(peerChain(socket), anchors, new Date()));
        } catch (e) {
          log.warn('refused a client certificate', { remote: socket.remoteAddress, error: isMosError(e) ? e.message : String(e) });
          socket.destroy();
        }
      });
      server.on('tlsClientError', (e, socket) => {
        log.info('TLS handshake failed', { remote: socket.remoteAddress, error: (e as Error).message.split('\n')[0] });
      });
      return server as unknown as ReturnType<Parameters<typeof buildApp>[0]['serverFactory']>;
    },
  });
  await app.ready();
  const address = await (opts.fd !== undefined
    ? new Promise<string>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen({ fd: opts.fd }, () => resolve('fd'));
      })
    : app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8443 }));
  const addr = server!.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const host = typeof addr === 'object' && addr ? (addr.family === 'IPv6' ? `[${addr.address}]` : addr.address) : 'localhost';
  log.info('serving the upgrade API', { url: `https://${host}:${port}`, via: address === 'fd' ? `fd ${opts.fd}` : 'listen', clientCa: clientCaFile });
  return {
    url: `https://${host}:${port}`,
    port,
    engine,
    close: async () => {
      // An operation before its commit point is canceled (nothing changes); one past it is finished.
      const running = engine.running();
      if (running?.cancelable) engine.cancel(running.id);
      clearInterval(sweep);
      server!.closeAllConnections?.();
      await app.close();
      // Fastify closes only a server it started listening itself (not one on an inherited fd).
      if (server!.listening) await new Promise<void>((resolve) => server!.close(() => resolve()));
      await engine.idle();
      engine.stop();
    },
  };
}

/**
 * Runs the server in the foreground until SIGTERM or SIGINT, then closes it (an operation before its
 * commit point is canceled, one past it finishes). Resolves once everything is stopped.
 */
export async function serveUntilSignal(opts: ServeOptions): Promise<{ readonly url: string; readonly signal: string }> {
  const running = await startServer(opts);
  const signal = await new Promise<string>((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(s);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  opts.log.info('stopping', { signal });
  await running.close();
  return { url: running.url, signal };
}
