import type { Command } from 'commander';
import type { Operation } from '../../src/machine/index.js';
import { table, when } from '../shared/format.js';
import { action } from '../shared/run.js';
import { withClient } from './remote.js';
import { MosError } from '../../src/base/index.js';

/** `mosctl --server … operations [ID] [--cancel]`: the upgrade API's operations. */
export function register(program: Command): void {
  program
    .command('operations')
    .argument('[id]', 'one operation')
    .description('with --server: list the operations of the upgrade API, show one, or cancel one before its commit point')
    .option('--cancel', 'cancel operation ID (honoured until its commit point)', false)
    .action(
      action(async (ctx, id: string | undefined, o: { cancel: boolean }) => {
        const remote = ctx.globals.remote;
        if (!remote) throw new MosError({ code: 'USAGE', subject: 'operations', message: 'needs --server (operations are the upgrade API’s)' });
        if (o.cancel && id === undefined) throw new MosError({ code: 'USAGE', subject: '--cancel', message: 'needs an operation id' });
        return withClient(remote, async (c) => {
          if (id === undefined) {
            const { operations } = await c.call<{ operations: Operation[] }>('GET', '/v1/operations');
            return { result: operations, text: table(['ID', 'ACTION', 'PHASE', 'CREATED', 'CLIENT'], operations.map((x) => [x.id, x.action, x.phase, when(x.createdAt), x.client?.subject ?? '-'])) };
          }
          const op = await c.call<Operation>(o.cancel ? 'POST' : 'GET', `/v1/operations/${encodeURIComponent(id)}${o.cancel ? '/cancel' : ''}`);
          const lines = [`${op.id}  ${op.action}  ${op.phase}${op.cancelable ? ' (cancelable)' : ''}`];
          if (op.progress) lines.push(`progress ${op.progress.bytesDone}/${op.progress.bytesTotal} bytes, ${op.progress.layersDone}/${op.progress.layersTotal} blobs`);
          if (op.error) lines.push(`error ${op.error.code}: ${op.error.message}${op.error.retryable ? ' (retryable)' : ''}`);
          if (op.interrupted) lines.push(`interrupted: ${op.interrupted.message}`);
          return { result: op, text: lines.join('\n') };
        });
      }, { remote: true }),
    );
}
