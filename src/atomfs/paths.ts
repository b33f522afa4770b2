import { join } from 'node:path';
import { ATOMFS_DIR, LOCK_FILE, MOUNTS_DIR, UPPER_DIR, VERIFIED_DIR, WORK_DIR, WORKAROUND_DIR } from './constants.js';

/** Where atomfs keeps its shared state below a scratch dir (`<root>/scratch-writes`). */
export interface AtomfsPaths {
  readonly base: string;
  readonly mounts: string;
  readonly workaround: string;
  readonly verified: string;
  readonly lock: string;
}

/** The shared atomfs paths of `scratchDir` (pure). */
export function atomfsPaths(scratchDir: string): AtomfsPaths {
  const base = join(scratchDir, ATOMFS_DIR);
  const mounts = join(base, MOUNTS_DIR);
  return { base, mounts, workaround: join(mounts, WORKAROUND_DIR), verified: join(base, VERIFIED_DIR), lock: join(base, LOCK_FILE) };
}

/** Upper and work dirs of a target's writable root (pure). */
export function writablePaths(scratchDir: string, target: string): { dir: string; upper: string; work: string } {
  const dir = join(scratchDir, target);
  return { dir, upper: join(dir, UPPER_DIR), work: join(dir, WORK_DIR) };
}
