import type { Stats } from 'node:fs';
import { MosError } from '../base/index.js';
import { exec } from '../host/index.js';

/**
 * Overlay whiteout conventions (kernel Documentation/filesystems/overlayfs.rst) and their OCI tar
 * counterparts (image-spec layer.md "Whiteouts").
 */

/** Opaque-directory xattrs we write: `trusted.` for root mounts, `user.` for `userxattr` mounts (atomfs). */
export const OVERLAY_OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'] as const;
/** OCI tar whiteout prefix: `.wh.NAME` deletes NAME from lower layers. */
export const OCI_WHITEOUT_PREFIX = '.wh.';
/** OCI tar opaque marker: its directory hides lower layers' content. */
export const OCI_OPAQUE_MARKER = '.wh..wh..opq';

/** True for an overlay whiteout: a character device 0:0. */
export function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Checks a layer-relative path: no leading `/`, no empty, `.` or `..` components, no NUL or newline. */
export function checkRelativePath(rel: string, subject: string): void {
  const parts = rel.split('/');
  if (rel === '' || /[\0\n]/.test(rel) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `${JSON.stringify(rel)} is not a clean relative path` });
  }
}

/**
 * mksquashfs pseudo-file lines that create each path as a whiteout (char device 0:0, mode 0, root),
 * so no mknod (and no root) is needed. Every character but [A-Za-z0-9._-/] is backslash-escaped.
 */
export function pseudoWhiteoutLines(paths: readonly string[]): string {
  return paths
    .map((p) => {
      checkRelativePath(p, 'whiteouts');
      return `${p.replace(/[^A-Za-z0-9._\-/]/g, (c) => `\\${c}`)} c 0 0 0 0 0\n`;
    })
    .join('');
}

/** Marks `dir` opaque for overlay with both xattr namespaces (setting `trusted.*` needs root). */
export async function setOpaque(dir: string): Promise<void> {
  for (const name of OVERLAY_OPAQUE_XATTRS) await exec(['setfattr', '-h', '-n', name, '-v', 'y', dir]);
}

/** Directories under `root` (relative paths) carrying an overlay opaque xattr of either namespace. */
export async function findOpaqueDirs(root: string): Promise<Set<string>> {
  const { stdout } = await exec(['getfattr', '-R', '-P', '--absolute-names', '-m', '^(trusted|user)\\.overlay\\.opaque$', '-d', '-e', 'text', root], {
    okCodes: [0, 1],
  });
  const found = new Set<string>();
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) current = unescapeGetfattr(line.slice(8));
    else if (current !== undefined && /^(trusted|user)\.overlay\.opaque="y"$/.test(line)) {
      const rel = current === root ? '' : current.slice(root.length + 1);
      found.add(rel);
    }
  }
  return found;
}

// getfattr prints unusual bytes of names as \ooo octal escapes.
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
