import type { Test } from 'tap';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

/** True when this process runs as root. */
export const isRoot = process.getuid?.() === 0;

/** True when `program` is an executable file on PATH (a scan, like the shell's `command -v`). */
export function hasProgram(program: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const file = join(dir || '.', program);
    try {
      if (statSync(file).isFile()) {
        accessSync(file, constants.X_OK);
        return true;
      }
    } catch {
      // absent or not executable in this PATH entry: try the next one
    }
  }
  return false;
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
