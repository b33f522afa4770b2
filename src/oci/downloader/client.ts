import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MosError, silentLogger, type Logger } from '../../base/index.js';
import { MAX_MANIFEST_BYTES } from '../media-types.js';
import { defaultAuthFiles, searchCredentials } from '../registry/credentials.js';
import type { RegistryOptions } from '../registry/options.js';
import { readCaFiles } from '../registry/tls.js';
import { ReadOnlyWrites } from '../read-only.js';
import type { Descriptor, FetchBlobOptions, RegistryReader, TransferOptions } from '../types.js';
import { verifiedFrom, verifyBytes } from '../verify.js';
import { downloaderIds, type DownloaderIds } from './user.js';
import type { Readable } from 'node:stream';
import { DATA_FD, FRAME_CHUNK, FRAME_END, FRAME_ERROR, MAX_ERROR_FRAME, MAX_FRAME, STREAM_WINDOW, checkDescriptor, fromWire, type CallOp, type Reply, type Request, type WireError, type WireRepositoryOptions } from './protocol.js';

// Root's side of the unprivileged downloader (the EVE split: "the downloader owns its directory, the
// verifier is the only one with write access to verified content"). One child per process, started on
// the first request and kept while the process lives; it has no write access to anything of the
// machine's, and whatever it answers is checked here as if a registry had said it.

/** Who the downloader runs as and how it is started. */
export interface DownloaderOptions {
  /** `--downloader-user`: a user name (created if missing), `UID` or `UID:GID` (see {@link downloaderIds}), or the ids. */
  readonly user: string | DownloaderIds;
  /** The child's program: `[node, ...args]`; default node with this process's flags and `child-main` beside this module. */
  readonly command?: readonly string[];
  /** Told when the child starts and stops, and what it logs that has no repository. */
  readonly log?: Logger;
}

type Pending =
  | { readonly kind: 'call'; resolve(v: unknown): void; reject(e: unknown): void; readonly subject: string }
  | { readonly kind: 'stream'; push(r: Reply): void; fail(e: unknown): void };

/** The unprivileged child and the requests in flight to it. */
export class Downloader {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private nextSid = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly loggers = new Map<number, Logger>();
  private stderrTail = '';
  private idsP: Promise<DownloaderIds> | undefined;
  private ids: DownloaderIds | undefined;

  constructor(readonly opts: DownloaderOptions) {}

  /** Resolves (and if need be creates) the user, once. */
  async ready(): Promise<DownloaderIds> {
    this.idsP ??= (async () => {
      const ids = typeof this.opts.user === 'string' ? await downloaderIds(this.opts.user, this.opts.log ? { log: this.opts.log } : {}) : this.opts.user;
      if (!Number.isSafeInteger(ids.uid) || ids.uid <= 0 || !Number.isSafeInteger(ids.gid) || ids.gid <= 0) {
        throw new MosError({ code: 'USAGE', subject: '--downloader-user', message: `uid ${ids.uid}, gid ${ids.gid}: the downloader never runs as root`, hint: 'pass a user name, UID or UID:GID, or off' });
      }
      this.ids = ids;
      return ids;
    })();
    this.idsP.catch(() => (this.idsP = undefined));
    return this.idsP;
  }

  /** The pid of the running child, if one runs (tests check its credentials in /proc). */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /**
   * Starts the child now, in the background, so that its start-up overlaps the caller's own work before
   * the first read (a failure here is reported by that read). Idle, it does not keep the process alive.
   */
  prestart(): void {
    // Only for a user that exists already: a command that never reads a registry adds no account.
    const known = typeof this.opts.user === 'string' ? downloaderIds(this.opts.user, { create: false }) : Promise.resolve(this.opts.user);
    void known
      .then((ids) => (ids ? this.ready() : undefined))
      .then((ids) => {
        if (!ids) return;
        this.started();
        this.unrefIfIdle();
      })
      .catch(() => {});
  }

  /** A repository read through the child (nothing is sent until the first read). */
  openRepository(opts: RegistryOptions & { readonly host: string; readonly name: string }): RemoteRepository {
    return new RemoteRepository(this, this.nextSid++, opts);
  }

  /** Stops the child (a later request starts a new one). */
  async close(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.ref(); // an idle child is unref'd: keep the loop alive until it has gone
    c.kill('SIGTERM');
    await gone;
  }

  /** @internal */
  send(m: Request): void {
    // Acks and cancels concern a child that is running: after it has gone they start nothing.
    if ((m.t === 'ack' || m.t === 'cancel') && !this.child?.connected) return;
    const c = this.started();
    c.send(m);
  }

  /** @internal registers a request and sends it; the reply settles or feeds `p`. */
  request(m: Request & { readonly id: number }, p: Pending): void {
    this.pending.set(m.id, p);
    this.ref();
    try {
      this.send(m);
    } catch (e) {
      this.pending.delete(m.id);
      this.unrefIfIdle();
      throw e;
    }
  }

  /** @internal */
  done(id: number): void {
    this.pending.delete(id);
    this.unrefIfIdle();
  }

  /** @internal */
  id(): number {
    return this.nextId++;
  }

  /** @internal */
  logTo(sid: number, log: Logger): void {
    this.loggers.set(sid, log);
  }

  private started(): ChildProcess {
    const ids = this.ids;
    if (!ids) throw new MosError({ code: 'INTERNAL', subject: 'downloader', message: 'used before ready()' });
    if (this.child && this.child.exitCode === null && this.child.signalCode === null && this.child.connected) return this.child;
    const [execPath, ...args] = this.opts.command ?? defaultCommand();
    this.stderrTail = '';
    const child = spawn(execPath!, args, {
      serialization: 'advanced',
      uid: ids.uid,
      gid: ids.gid,
      // A development loader (--import tsx) resolves from the working directory; the CLI's own command needs none.
      cwd: this.opts.command ? '/' : process.cwd(),
      // Nothing of root's environment: no credentials, no proxy settings it did not need.
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...(process.env['NODE_EXTRA_CA_CERTS'] ? { NODE_EXTRA_CA_CERTS: process.env['NODE_EXTRA_CA_CERTS'] } : {}) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc', 'pipe'],
    });
    const frames = new FrameReader((type, id, payload) => this.frame(type, id, payload), (e) => {
      this.failAll(e);
      child.kill('SIGKILL');
    });
    (child.stdio[DATA_FD] as Readable).on('data', (b: Buffer) => frames.push(b));
    child.stderr?.on('data', (b: Buffer) => (this.stderrTail = (this.stderrTail + b.toString()).slice(-2000)));
    child.on('message', (m: Reply) => this.receive(m));
    child.on('error', (e) => this.failAll(new MosError({ code: 'HOST_EXEC_FAILED', subject: 'downloader', message: `cannot start the downloader: ${e.message}`, cause: e })));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
      this.failAll(new MosError({
        code: 'HOST_EXEC_FAILED',
        subject: `downloader (uid ${ids.uid})`,
        message: `exited ${signal ? `on ${signal}` : `with code ${code}`} during a download${tail ? `: ${tail}` : ''}`,
        hint: 'check that the downloader user can read mosctl and node (or run with --downloader-user off)',
      }));
    });
    this.child = child;
    this.opts.log?.debug('downloader started', { pid: child.pid, uid: ids.uid, gid: ids.gid });
    return child;
  }

  private receive(m: Reply): void {
    if (m?.t === 'log') {
      (this.loggers.get(m.sid) ?? this.opts.log ?? silentLogger)[m.level === 'warn' ? 'warn' : m.level === 'info' ? 'info' : 'debug'](String(m.msg).slice(0, 2000), m.fields);
      return;
    }
    const p = this.pending.get(m?.id);
    if (!p) return;
    // Blob streams take the data pipe only: the same id on the IPC channel is a broken child.
    if (p.kind === 'stream') return p.fail(new MosError({ code: 'REGISTRY_PROTOCOL', subject: 'downloader', message: `sent a ${String(m.t)} message for a blob stream on the control channel` }));
    this.done(m.id);
    if (m.t === 'ok') p.resolve(m.value);
    else if (m.t === 'err') p.reject(fromWire(m.error));
    else p.reject(new MosError({ code: 'REGISTRY_PROTOCOL', subject: p.subject, message: `the downloader answered a request with a ${String(m.t)} message` }));
  }

  // A frame (or a piece of a chunk frame) from the data pipe, for the blob stream `id`.
  private frame(type: number, id: number, payload: Buffer): void {
    const p = this.pending.get(id);
    if (!p || p.kind !== 'stream') return;
    if (type === FRAME_CHUNK) p.push({ t: 'chunk', id, data: payload });
    else if (type === FRAME_END) p.push({ t: 'end', id });
    else {
      let error: WireError;
      try {
        error = JSON.parse(payload.toString('utf8')) as WireError;
      } catch {
        error = { code: 'REGISTRY_PROTOCOL', message: 'the downloader sent a malformed error' };
      }
      p.push({ t: 'err', id, error });
    }
  }

  private failAll(e: MosError): void {
    for (const [id, p] of [...this.pending]) {
      this.pending.delete(id);
      if (p.kind === 'call') p.reject(e);
      else p.fail(e);
    }
  }

  private ref(): void {
    (this.child?.stdio[DATA_FD] as { ref?: () => void } | null | undefined)?.ref?.();
    this.child?.ref();
    (this.child?.channel as { ref?: () => void } | undefined)?.ref?.();
    (this.child?.stderr as { ref?: () => void } | null | undefined)?.ref?.();
  }

  // An idle child must not keep mosctl alive: it exits with its parent (IPC disconnect).
  private unrefIfIdle(): void {
    if (this.pending.size > 0) return;
    (this.child?.stdio[DATA_FD] as { unref?: () => void } | null | undefined)?.unref?.();
    this.child?.unref();
    (this.child?.channel as { unref?: () => void } | undefined)?.unref?.();
    (this.child?.stderr as { unref?: () => void } | null | undefined)?.unref?.();
  }
}

/**
 * Splits the data pipe into frames: a chunk frame's payload is passed on piece by piece as it arrives
 * (no copy, no waiting for the whole frame); an error frame is gathered (at most 64 KiB). A header
 * announcing more than a frame may hold is a broken or hostile child: `fail`.
 */
class FrameReader {
  private readonly header = Buffer.alloc(9);
  private have = 0;
  private type = 0;
  private id = 0;
  private left = 0;
  private parts: Buffer[] = [];
  private broken = false;

  constructor(
    private readonly deliver: (type: number, id: number, payload: Buffer) => void,
    private readonly fail: (e: MosError) => void,
  ) {}

  push(buf: Buffer): void {
    let off = 0;
    while (off < buf.length && !this.broken) {
      if (this.left === 0 && this.have < 9) {
        const n = Math.min(9 - this.have, buf.length - off);
        buf.copy(this.header, this.have, off, off + n);
        this.have += n;
        off += n;
        if (this.have < 9) return;
        this.type = this.header.readUInt8(0);
        this.id = this.header.readUInt32BE(1);
        this.left = this.header.readUInt32BE(5);
        const max = this.type === FRAME_CHUNK ? MAX_FRAME : this.type === FRAME_ERROR ? MAX_ERROR_FRAME : 0;
        if (![FRAME_CHUNK, FRAME_END, FRAME_ERROR].includes(this.type) || this.left > max) {
          this.broken = true;
          this.fail(new MosError({ code: 'REGISTRY_PROTOCOL', subject: 'downloader', message: `sent a malformed frame (type ${this.type}, ${this.left} bytes); stopped it` }));
          return;
        }
        if (this.left === 0) this.complete();
        continue;
      }
      const n = Math.min(this.left, buf.length - off);
      const piece = buf.subarray(off, off + n);
      off += n;
      this.left -= n;
      if (this.type === FRAME_CHUNK) this.deliver(FRAME_CHUNK, this.id, piece);
      else this.parts.push(piece);
      if (this.left === 0) this.complete();
    }
  }

  private complete(): void {
    if (this.type !== FRAME_CHUNK) this.deliver(this.type, this.id, Buffer.concat(this.parts));
    this.parts = [];
    this.have = 0;
  }
}

/** node, its flags (a TypeScript loader in development), and the child's entry beside this module. */
function defaultCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  const entry = here.replace(/client\.(ts|js)$/, 'child-main.$1');
  return [process.execPath, ...process.execArgv.filter((a) => !a.includes('@tapjs')), entry];
}

const ACK_STEP = 1024 * 1024;

/**
 * One repository read through the downloader: the `ContentStore` read side and referrers, every answer
 * checked here (descriptors by shape, documents by digest, blobs by size while they stream and by
 * digest in the store that writes them). Read-only.
 */
export class RemoteRepository extends ReadOnlyWrites implements RegistryReader {
  readonly display: string;
  protected readonly writeHint = 'reads through the downloader; push with mosb';
  private opened: Promise<void> | undefined;

  constructor(
    private readonly dl: Downloader,
    private readonly sid: number,
    private readonly opts: RegistryOptions & { readonly host: string; readonly name: string },
  ) {
    super();
    this.display = `${opts.host}/${opts.name}`;
  }

  get host(): string {
    return this.opts.host;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Sends `open` once: the CA files and credentials are read here, as root, and passed as values. */
  private open(): Promise<void> {
    this.opened ??= (async () => {
      await this.dl.ready();
      const o = this.opts;
      const credentials = o.credentials ?? (await searchCredentials(o.authFile !== undefined ? [o.authFile] : defaultAuthFiles(), o.host, o.name));
      const caPems = [...(await readCaFiles(o.caFiles ?? [])), ...(o.caPems ?? [])];
      const wire: WireRepositoryOptions = {
        host: o.host,
        name: o.name,
        ...(o.insecureHosts ? { insecureHosts: o.insecureHosts } : {}),
        ...(caPems.length ? { caPems } : {}),
        ...(credentials ? { credentials } : {}),
        ...(o.platform ? { platform: o.platform } : {}),
        ...pick(o, ['requestTimeoutMs', 'stallTimeoutMs', 'minBytesPerSecond', 'maxBytesPerSecond', 'rateWindowMs', 'requestDeadlineMs', 'retries', 'retryBaseMs', 'maxRetryAfterMs', 'concurrency']),
      };
      this.dl.logTo(this.sid, o.log ?? silentLogger);
      this.dl.send({ t: 'open', sid: this.sid, opts: wire });
    })();
    this.opened.catch(() => (this.opened = undefined));
    return this.opened;
  }

  private async call(op: CallOp, args: unknown[], opts: TransferOptions | undefined, subject: string): Promise<unknown> {
    await this.open();
    opts?.signal?.throwIfAborted();
    const id = this.dl.id();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.dl.send({ t: 'cancel', id });
        this.dl.done(id);
        reject(opts?.signal?.reason);
      };
      opts?.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        opts?.signal?.removeEventListener('abort', onAbort);
        f(v);
      };
      this.dl.request({ t: 'call', id, sid: this.sid, op, args }, { kind: 'call', resolve: settle(resolve), reject: settle(reject), subject });
    });
  }

  async resolve(reference: string, opts?: TransferOptions): Promise<Descriptor> {
    const subject = `${this.display}:${reference}`;
    return checkDescriptor(await this.call('resolve', [reference], opts, subject), subject);
  }

  async fetchBytes(desc: Descriptor, opts?: TransferOptions): Promise<Uint8Array> {
    const subject = `${this.display}@${desc.digest}`;
    if (desc.size > MAX_MANIFEST_BYTES || desc.size < 0) {
      throw new MosError({ code: 'OCI_SIZE_EXCEEDS_LIMIT', subject, message: `${desc.size} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit for documents read whole` });
    }
    const v = await this.call('fetchBytes', [plain(desc)], opts, subject);
    if (!(v instanceof Uint8Array)) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject, message: 'the downloader answered with no bytes' });
    verifyBytes(v, desc, subject);
    return v;
  }

  async exists(desc: Descriptor, opts?: TransferOptions): Promise<boolean> {
    const v = await this.call('exists', [plain(desc)], opts, `${this.display}@${desc.digest}`);
    return v === true;
  }

  async referrers(subject: Descriptor, opts: TransferOptions & { readonly artifactType?: string } = {}): Promise<Descriptor[]> {
    const what = `${this.display}@${subject.digest} referrers`;
    const v = await this.call('referrers', [subject.digest, opts.artifactType !== undefined ? { artifactType: opts.artifactType } : {}], opts, what);
    if (!Array.isArray(v) || v.length > 10_000) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: what, message: 'the downloader answered with a malformed referrers list' });
    return v.map((d) => checkDescriptor(d, what));
  }

  /** Streams a blob from the child, sized-checked here (and digest-checked from 0 unless `sizeOnly`). */
  fetchBlob(desc: Descriptor, opts: FetchBlobOptions = {}): AsyncIterable<Uint8Array> {
    const offset = opts.offset ?? 0;
    return verifiedFrom(this.stream(desc, offset, opts.signal), desc, offset, `${this.display}@${desc.digest}`, opts.sizeOnly);
  }

  private async *stream(desc: Descriptor, offset: number, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    await this.open();
    signal?.throwIfAborted();
    const id = this.dl.id();
    const queue: Reply[] = [];
    let queued = 0;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const poke = () => {
      wake?.();
      wake = undefined;
    };
    const onAbort = () => {
      failure ??= signal?.reason;
      poke();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.dl.request(
      { t: 'blob', id, sid: this.sid, desc: plain(desc), offset },
      {
        kind: 'stream',
        push: (r) => {
          if (r.t === 'chunk') queued += r.data.byteLength;
          // The child sends at most STREAM_WINDOW unacknowledged bytes: more is a child ignoring the window.
          if (queued > 2 * STREAM_WINDOW) failure ??= new MosError({ code: 'REGISTRY_PROTOCOL', subject: `${this.display}@${desc.digest}`, message: 'the downloader sent past its window' });
          else queue.push(r);
          poke();
        },
        fail: (e) => {
          failure ??= e;
          poke();
        },
      },
    );
    let ended = false;
    let unacked = 0;
    // The child keeps its own timers on the registry; this one is for a child that stops talking. It
    // allows what a legitimate child may spend silent: a stalled reply's timeouts and a Retry-After wait.
    const o = this.opts;
    const stallMs = (o.stallTimeoutMs ?? 30_000) + (o.requestTimeoutMs ?? 30_000) + (o.maxRetryAfterMs ?? 60_000) + 1000;
    try {
      for (;;) {
        const r = queue.shift();
        if (!r) {
          if (failure !== undefined) throw failure;
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((res) => {
            wake = res;
            timer = setTimeout(() => {
              failure ??= new MosError({ code: 'REGISTRY_TIMEOUT', subject: `${this.display}@${desc.digest}`, message: `the downloader sent nothing for ${stallMs / 1000} s` });
              poke();
            }, stallMs);
          });
          clearTimeout(timer);
          continue;
        }
        if (r.t === 'chunk') {
          queued -= r.data.byteLength;
          if (!(r.data instanceof Uint8Array) || r.data.byteLength > MAX_FRAME) throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: `${this.display}@${desc.digest}`, message: 'the downloader sent a malformed chunk' });
          yield r.data;
          unacked += r.data.byteLength;
          if (unacked >= ACK_STEP) {
            this.dl.send({ t: 'ack', id, bytes: unacked });
            unacked = 0;
          }
        } else if (r.t === 'end') {
          ended = true;
          return;
        } else if (r.t === 'err') {
          ended = true;
          throw fromWire(r.error);
        } else {
          throw new MosError({ code: 'REGISTRY_PROTOCOL', subject: `${this.display}@${desc.digest}`, message: `the downloader sent a ${String(r.t)} message in a blob stream` });
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!ended) {
        try {
          this.dl.send({ t: 'cancel', id });
        } catch {}
      }
      this.dl.done(id);
    }
  }
}

/** A descriptor as data only (structured clone refuses nothing here, but the child needs no more). */
function plain(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.artifactType !== undefined ? { artifactType: d.artifactType } : {}) };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
