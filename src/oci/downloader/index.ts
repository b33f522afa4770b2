import { openRepository } from '../registry/repository.js';
import type { RegistryOptions } from '../registry/options.js';
import type { RegistryReader } from '../types.js';
import { Downloader } from './client.js';
import { downloaderPolicy, setDownloaderPolicy, type DownloaderPolicy } from './policy.js';

export { Downloader, RemoteRepository, type DownloaderOptions } from './client.js';
export { downloaderIds, DOWNLOADER_USER, DOWNLOADER_DEFAULT_ID, type DownloaderIds } from './user.js';
export { runDownloaderChild } from './child.js';
export { setDownloaderPolicy, type DownloaderPolicy } from './policy.js';

// Whether this process reads registries through the unprivileged downloader: a process-wide policy,
// like its logger (downloader/policy.ts). mosctl sets it at start (`--downloader-user`, default on as
// root); libraries and mosb leave it unset and talk to registries in-process.
let shared: { readonly downloader: Downloader; readonly generation: number } | undefined;

/** The downloader of the policy in effect: started on first use, the previous one closed on a change. */
function current(): Downloader | undefined {
  const { policy, generation } = downloaderPolicy();
  if (shared?.generation !== generation) {
    void shared?.downloader.close();
    shared = policy ? { downloader: new Downloader(policy), generation } : undefined;
  }
  return shared?.downloader;
}

/**
 * Reads registries through a downloader running as `user` from now on (`undefined` or 'off': in this
 * process again). Only effective as root: another user cannot change its uid, and runs in-process.
 * `prestart`: start the child at once (for a command that will read a registry).
 */
export function useDownloader(cfg: DownloaderPolicy | undefined): void {
  setDownloaderPolicy(cfg);
  const d = current();
  if (cfg?.prestart) d?.prestart();
}

/** A registry repository for reading: through the downloader when the policy says so, else in-process. */
export function openReadRepository(opts: RegistryOptions & { readonly host: string; readonly name: string }): RegistryReader {
  const d = current();
  if (!d || opts.fetch) return openRepository(opts);
  return d.openRepository(opts);
}
