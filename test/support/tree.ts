import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Every path below `dir` (relative, sorted) with its type, and for files their sha256: a hash of the
 * whole tree, to check that a failed or dry command changed nothing.
 */
export function treeHash(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      const rel = relative(dir, p);
      if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else if (st.isFile()) out.set(rel, `file ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      else out.set(rel, st.isSymbolicLink() ? 'symlink' : 'other');
    }
  };
  walk(dir);
  return out;
}
