import type { Logger } from '../../base/index.js';

/** How this process reads registries: through a downloader child running as `user` (see useDownloader). */
export interface DownloaderPolicy {
  readonly user: string;
  readonly command?: readonly string[];
  readonly log?: Logger;
  readonly prestart?: boolean;
}

// The process-wide policy, apart from the downloader client so that setting it loads no registry code:
// mosctl sets it before every command, most of which never read a registry.
let policy: DownloaderPolicy | undefined;
let generation = 0;

/**
 * Sets the policy (`undefined` or user 'off': in this process). Only effective as root: another user
 * cannot change its uid, and reads in-process. A downloader already running for an earlier policy is
 * closed when the registry code next looks (downloader/index.ts).
 */
export function setDownloaderPolicy(cfg: DownloaderPolicy | undefined): void {
  policy = cfg === undefined || cfg.user === 'off' || process.geteuid?.() !== 0 ? undefined : cfg;
  generation++;
}

/** The policy in effect, and a number that changes whenever it is set. */
export function downloaderPolicy(): { readonly policy: DownloaderPolicy | undefined; readonly generation: number } {
  return { policy, generation };
}
