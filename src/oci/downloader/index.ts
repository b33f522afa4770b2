import type { Logger } from '../../base/index.js';
import { openRepository } from '../registry/repository.js';
import type { RegistryOptions } from '../registry/options.js';
import type { RegistryReader } from '../types.js';
import { Downloader } from './client.js';

export { Downloader, RemoteRepository, type DownloaderOptions } from './client.js';
export { downloaderIds, DOWNLOADER_USER, DOWNLOADER_DEFAULT_ID, type DownloaderIds } from './user.js';
export { runDownloaderChild } from './child.js';

// Whether this process reads registries through the unprivileged downloader: a process-wide policy,
// like its logger. mosctl sets it at start (`--downloader-user`, default on as root); libraries and mosb
// leave it unset and talk to registries in-process.
let shared: Downloader | undefined;

/**
 * Reads registries through a downloader running as `user` from now on (`undefined` or 'off': in this
 * process again). Only effective as root: another user cannot change its uid, and runs in-process.
 * `prestart`: start the child at once (for a command that will read a registry).
 */
export function useDownloader(cfg: { readonly user: string; readonly command?: readonly string[]; readonly log?: Logger; readonly prestart?: boolean } | undefined): void {
  void shared?.close();
  shared = cfg === undefined || cfg.user === 'off' || process.geteuid?.() !== 0 ? undefined : new Downloader(cfg);
  if (cfg?.prestart) shared?.prestart();
}

/** A registry repository for reading: through the downloader when the policy says so, else in-process. */
export function openReadRepository(opts: RegistryOptions & { readonly host: string; readonly name: string }): RegistryReader {
  if (!shared || opts.fetch) return openRepository(opts);
  return shared.openRepository(opts);
}
