import type { Command } from 'commander';
// src/machine loads when a command runs (cmd/mosctl/load.ts): --version, --help and usage errors start
// without it, the registry client and node:http/https/tls.
import { DOWNLOADER_USER } from '../../src/base/index.js';
import { machine } from './load.js';

/** `mosctl __downloader`: the unprivileged registry reader mosctl starts as its own child (never by hand). */
export const DOWNLOADER_MODE = '__downloader';

/** Runs this process as the downloader child (the full bundle's copy of that mode). */
export function runDownloaderChild(): void {
  void machine().then((m) => m.runDownloaderChild());
}

/** Commands that read registries (when given a registry source). */
const PULLING = new Set(['install', 'update', 'upgrade', 'switch', 'serve']);

/** The global `--downloader-user` option; before each command, the process's downloader policy from it. */
export function register(program: Command): void {
  program.option(
    '--downloader-user <user>',
    `run registry traffic in a child under this user: a name (created if missing), UID or UID:GID; off: in this process (default: $MOSCTL_DOWNLOADER_USER, else ${DOWNLOADER_USER}; only as root)`,
  );
  program.hook('preAction', async (cmd, action) => {
    const user = (cmd.opts() as { downloaderUser?: string }).downloaderUser ?? (process.env['MOSCTL_DOWNLOADER_USER'] || DOWNLOADER_USER);
    const remote = (cmd.opts() as { server?: string }).server !== undefined;
    // Commands that read a registry start the child at once: its start-up overlaps theirs. An `oci:`
    // source is a local layout (its images come from the same layout): no child unless one is asked for.
    const source = action.args[0];
    const prestart = !remote && PULLING.has(action.name()) && !source?.startsWith('oci:');
    (await machine()).useDownloader({ user, command: [process.execPath, ...process.execArgv, process.argv[1]!, DOWNLOADER_MODE], prestart });
  });
}
