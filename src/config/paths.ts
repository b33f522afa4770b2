import { join } from 'node:path';

/** The branch mos keeps the system state on. */
export const BRANCH = 'master';
export const BRANCH_REF = `refs/heads/${BRANCH}`;

/** Commit identity mos uses for every generation. */
export const AUTHOR = { name: 'machine', email: 'root@machine.local' } as const;

/** What the git CLI writes into a fresh non-bare repository's config on Linux. */
export const GIT_CONFIG = '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n';

/** Files bigger than this in a generation are not mos's (manifests are KiB; certs and signatures less). */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** Where the config store lives under a system root. */
export interface ConfigPaths {
  /** `<root>/config` */
  readonly configDir: string;
  /** `<root>/config/manifest.git`: the non-bare worktree; its git dir is `.git` inside. */
  readonly repoDir: string;
  /** `<root>/config/manifest.lock`: every writer holds an exclusive flock on it. */
  readonly lockPath: string;
}

/** The config store paths of `root`. Pure. */
export function configPaths(root: string): ConfigPaths {
  const configDir = join(root, 'config');
  return { configDir, repoDir: join(configDir, 'manifest.git'), lockPath: join(configDir, 'manifest.lock') };
}

/** Scratch space for our atomic writes: beside the repository (same filesystem), outside it. */
export function scratchDir(configDir: string): string {
  return join(configDir, '.manifest-tmp');
}
