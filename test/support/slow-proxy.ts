import type { Test } from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A TCP proxy on 127.0.0.1 in front of a real server, throttling what the server sends back. */
export interface SlowProxy {
  readonly host: string;
  /** Bytes per second from the server to the client (0 = unthrottled). */
  rate: number;
  /** Bytes the server has sent back through the proxy so far (what a download cost the registry). */
  readonly bytesDown: number;
  /** Resolves once no connection is open (what a killed client had in flight is then all counted). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a proxy to `target` (`127.0.0.1:PORT`). Replies are paced at `rate` bytes per second in 16 KiB
 * slices, so a download through it takes a predictable time (a cancel or a kill can land mid-blob).
 */
export async function startSlowProxy(t: Pick<Test, "teardown">, target: string, rate: number): Promise<SlowProxy> {
  const [thost, tport] = target.split(':') as [string, string];
  const sockets = new Set<Socket>();
  const proxy: SlowProxy = {
    host: '',
    rate,
    bytesDown: 0,
    idle: async () => {
      for (let i = 0; i < 500 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    },
    close: async () => {},
  };
  const server = createServer((client) => {
    const upstream = connect(Number(tport), thost);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    let queue = Promise.resolve();
    upstream.on('data', (chunk: Buffer) => {
      (proxy as { bytesDown: number }).bytesDown += chunk.length;
      if (proxy.rate <= 0) {
        client.write(chunk);
        return;
      }
      upstream.pause();
      queue = queue.then(async () => {
        for (let off = 0; off < chunk.length && !client.destroyed; off += 16384) {
          const part = chunk.subarray(off, off + 16384);
          client.write(part);
          await new Promise((r) => setTimeout(r, (part.length / proxy.rate) * 1000));
        }
        upstream.resume();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  (proxy as { host: string }).host = `127.0.0.1:${port}`;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(() => proxy.close());
  return proxy;
}
