import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';

/** True when this process runs as root. */
export const isRoot = process.getuid?.() === 0;

/** True when `program` is on PATH. */
export function hasProgram(program: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', program], { stdio: 'ignore' }).status === 0;
}

/**
 * Why a test cannot run here (not root, or a program missing), or false when it can. Use as
 * `t.test(name, { skip: needs({ root: true, programs: ['mksquashfs'] }) }, ...)`: the reason is printed.
 */
export function needs(req: { root?: boolean; programs?: readonly string[] }): string | false {
  if (req.root && !isRoot) return 'needs root';
  for (const p of req.programs ?? []) if (!hasProgram(p)) return `needs ${p} (apt-get install it; see .ci/setup)`;
  return false;
}

/** A fresh temp dir removed in teardown (tap's testdir), as an absolute path. */
export function tempDir(t: Test): string {
  return t.testdir({});
}
