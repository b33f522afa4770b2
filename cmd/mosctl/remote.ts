import type { ApiClient } from '../../src/serve/index.js';
import type { Operation } from '../../src/machine/index.js';
import type { CommandContext, RemoteOptions } from '../shared/run.js';
import { serve } from './load.js';

/** Runs `fn` with a client of the upgrade API named by --server, closing it afterwards. */
export async function withClient<T>(remote: RemoteOptions, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const { ApiClient } = await serve();
  const client = await ApiClient.open({ server: remote.server, certFile: remote.cert, keyFile: remote.key, caFile: remote.ca });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/**
 * Starts an operation through the API, follows it to its end (progress on the terminal as locally) and
 * returns its result: the same object the local command returns, so the output is the same.
 */
export async function remoteOperation<T>(ctx: CommandContext, remote: RemoteOptions, path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  const { ApiClient } = await serve();
  return withClient(remote, async (c) => {
    const op = await c.call<Operation>('POST', path, body, headers);
    ctx.log.debug(`operation ${op.id} ${op.phase}`);
    const done = await c.follow(op.id, { onProgress: ctx.onProgress, signal: ctx.signal });
    return ApiClient.resultOf<T>(done);
  });
}
