import type { Command } from 'commander';
import { MosError, stderrLogger } from '../../src/base/index.js';
import { capathOf, capathOption, registryAccess, registryOptions, wholeNumber, type RegistryFlags } from '../shared/flags.js';
import { action } from '../shared/run.js';
import { serve } from './load.js';

interface ServeFlags extends RegistryFlags {
  readonly capath?: string;
  readonly listen: string;
  readonly listenFd?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly clientCa?: string;
  readonly maxConnections: string;
  readonly rateLimit: string;
  readonly systemdUnit: boolean;
  readonly systemdSocket: boolean;
}

/** `mosctl serve`: the authenticated upgrade API (README "The upgrade API"). */
export function register(program: Command): void {
  registryOptions(capathOption(program.command('serve')))
    .description('serve the upgrade API: HTTPS with mutual TLS, roles from the client certificate, persisted operations')
    .option('--listen <host:port>', 'address to bind', '127.0.0.1:8443')
    .option('--listen-fd <n>', 'use an inherited listening socket (systemd socket activation: 3)')
    .option('--tls-cert <file>', 'server certificate PEM (default <root>/factory/secure/api/cert.pem)')
    .option('--tls-key <file>', 'server key PEM (default <root>/factory/secure/api/key.pem)')
    .option('--client-ca <file>', 'CA client certificates must chain to (default <root>/factory/secure/apiCA.pem)')
    .option('--max-connections <n>', 'open connections at most', '256')
    .option('--rate-limit <n>', 'requests per minute per client certificate', '600')
    .option('--systemd-unit', 'print a systemd service unit for this command line and exit', false)
    .option('--systemd-socket', 'print a systemd socket unit for --listen and exit', false)
    .action(
      action(async (ctx, o: ServeFlags) => {
        const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):([0-9]{1,5})$/.exec(o.listen);
        if (!m) throw new MosError({ code: 'USAGE', subject: `--listen ${o.listen}`, message: 'must be HOST:PORT' });
        const host = m[1]!.replace(/^\[|\]$/g, '');
        const port = wholeNumber(m[2]!, '--listen port', 0, 65535);
        const s = await serve();
        if (o.systemdSocket) return { result: { unit: s.systemdSocket({ listen: o.listen }) }, text: s.systemdSocket({ listen: o.listen }) };
        if (o.systemdUnit) {
          const args = ['--root', ctx.globals.root, ...(o.tlsCert ? ['--tls-cert', o.tlsCert] : []), ...(o.tlsKey ? ['--tls-key', o.tlsKey] : []), ...(o.clientCa ? ['--client-ca', o.clientCa] : [])];
          const unit = s.systemdUnit({ mosctl: 'mosctl', args, socket: true });
          return { result: { unit }, text: unit };
        }
        const r = await s.serveUntilSignal({
          root: ctx.globals.root,
          ...capathOf(o),
          ...registryAccess(o),
          host,
          port,
          ...(o.listenFd !== undefined ? { fd: wholeNumber(o.listenFd, '--listen-fd', 0, 1024) } : {}),
          ...(o.tlsCert ? { certFile: o.tlsCert } : {}),
          ...(o.tlsKey ? { keyFile: o.tlsKey } : {}),
          ...(o.clientCa ? { clientCaFile: o.clientCa } : {}),
          limits: { maxConnections: wholeNumber(o.maxConnections, '--max-connections', 1, 65535), rateMax: wholeNumber(o.rateLimit, '--rate-limit', 1, 1_000_000), rateWindowMs: 60_000 },
          log: stderrLogger({ debug: ctx.globals.debug, json: true }),
        });
        return { result: r, text: `stopped on ${r.signal}` };
      }, { signals: false }),
    );
}
