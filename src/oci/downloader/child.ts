import type { Logger } from '../../base/index.js';
import { openRepository, type RegistryRepository } from '../registry/repository.js';
import type { Descriptor } from '../types.js';
import { Socket } from 'node:net';
import { DATA_FD, FRAME_CHUNK, FRAME_END, FRAME_ERROR, STREAM_WINDOW, toWire, type Reply, type Request } from './protocol.js';

// The downloader's side: runs under the unprivileged uid, holds the registry connections, and answers
// the parent's requests. It never touches the machine's files: blob bytes go back over the channel, and
// the parent verifies and stores them.

/** Runs the downloader loop on this process's IPC channel; ends when the parent goes away. */
export function runDownloaderChild(): void {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('mosctl downloader: no IPC channel (this mode is started by mosctl itself)\n');
    process.exit(2);
  }
  const post = (m: Reply): Promise<void> =>
    new Promise((resolve) => {
      // The callback runs once the message is written to the channel: sending paces itself on it.
      send(m, undefined, {}, () => resolve());
    });
  const data = new FrameWriter(new Socket({ fd: DATA_FD, readable: false, writable: true }));
  const repos = new Map<number, RegistryRepository>();
  const running = new Map<number, AbortController>();
  const windows = new Map<number, { credit: number; wake: (() => void) | undefined }>();
  const logger = (sid: number): Logger => {
    const at = (level: 'debug' | 'info' | 'warn') => (msg: string, fields?: Record<string, unknown>) => void post({ t: 'log', sid, level, msg, ...(fields ? { fields } : {}) });
    return { debug: at('debug'), info: at('info'), warn: at('warn') };
  };

  const repo = (sid: number): RegistryRepository => {
    const r = repos.get(sid);
    if (!r) throw new Error(`repository ${sid} was not opened`);
    return r;
  };

  const call = async (id: number, work: (signal: AbortSignal) => Promise<unknown>) => {
    const ac = new AbortController();
    running.set(id, ac);
    try {
      await post({ t: 'ok', id, value: await work(ac.signal) });
    } catch (e) {
      await post({ t: 'err', id, error: toWire(e) });
    } finally {
      running.delete(id);
    }
  };

  const blob = async (id: number, sid: number, desc: Descriptor, offset: number) => {
    const ac = new AbortController();
    running.set(id, ac);
    const w = { credit: STREAM_WINDOW, wake: undefined as (() => void) | undefined };
    windows.set(id, w);
    try {
      // The parent hashes every byte as it stores them: here only the size is checked.
      for await (const chunk of repo(sid).fetchBlob(desc, { offset, signal: ac.signal, sizeOnly: true })) {
        while (w.credit <= 0 && !ac.signal.aborted) await new Promise<void>((r) => (w.wake = r));
        ac.signal.throwIfAborted();
        w.credit -= chunk.byteLength;
        await data.frame(FRAME_CHUNK, id, chunk);
      }
      await data.frame(FRAME_END, id);
    } catch (e) {
      await data.frame(FRAME_ERROR, id, Buffer.from(JSON.stringify(toWire(e))));
    } finally {
      running.delete(id);
      windows.delete(id);
    }
  };

  process.on('message', (m: Request) => {
    switch (m.t) {
      case 'open':
        // Credentials come from root or not at all: the child has no home and must not read auth files.
        repos.set(m.sid, openRepository({ ...m.opts, credentials: m.opts.credentials ?? null, log: logger(m.sid) }));
        return;
      case 'call': {
        const [a, b] = m.args as [never, never];
        void call(m.id, (signal) => {
          const r = repo(m.sid);
          switch (m.op) {
            case 'resolve':
              return r.resolve(a, { signal });
            case 'fetchBytes':
              return r.fetchBytes(a, { signal });
            case 'exists':
              return r.exists(a, { signal });
            case 'referrers':
              return r.referrers(a, { ...((b as { artifactType?: string } | undefined) ?? {}), signal });
          }
        });
        return;
      }
      case 'blob':
        void blob(m.id, m.sid, m.desc, m.offset);
        return;
      case 'ack': {
        const w = windows.get(m.id);
        if (w) {
          w.credit += m.bytes;
          w.wake?.();
          w.wake = undefined;
        }
        return;
      }
      case 'cancel': {
        running.get(m.id)?.abort();
        const w = windows.get(m.id);
        w?.wake?.();
        return;
      }
    }
  });
  // The parent exited (or was killed): nothing is left to do for it.
  process.on('disconnect', () => process.exit(0));
}

/** Writes blob frames (type, stream id, length, payload) to the data pipe, waiting when it is full. */
class FrameWriter {
  constructor(private readonly sock: Socket) {}

  async frame(type: number, id: number, payload?: Uint8Array): Promise<void> {
    const header = Buffer.allocUnsafe(9);
    header.writeUInt8(type, 0);
    header.writeUInt32BE(id, 1);
    header.writeUInt32BE(payload?.byteLength ?? 0, 5);
    // Corked: header and payload leave in one writev.
    this.sock.cork();
    this.sock.write(header);
    const ok = payload && payload.byteLength > 0 ? this.sock.write(payload) : true;
    this.sock.uncork();
    if (!ok) await new Promise<void>((r) => this.sock.once('drain', () => r()));
  }
}
