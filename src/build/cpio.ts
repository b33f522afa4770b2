import { MosError } from '../base/index.js';

/** One member of a newc ("070701") cpio archive, the format the kernel unpacks as an initramfs. */
export type CpioEntry =
  | { readonly path: string; readonly kind: 'dir'; readonly mode: number }
  | { readonly path: string; readonly kind: 'file'; readonly mode: number; readonly data: Uint8Array }
  | { readonly path: string; readonly kind: 'symlink'; readonly target: string }
  | { readonly path: string; readonly kind: 'char' | 'block'; readonly mode: number; readonly major: number; readonly minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

function typeBits(e: CpioEntry): number {
  switch (e.kind) {
    case 'dir':
      return S_IFDIR | (e.mode & 0o7777);
    case 'file':
      return S_IFREG | (e.mode & 0o7777);
    case 'symlink':
      return S_IFLNK | 0o777;
    case 'char':
      return S_IFCHR | (e.mode & 0o7777);
    case 'block':
      return S_IFBLK | (e.mode & 0o7777);
  }
}

const hex8 = (n: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new MosError({ code: 'INTERNAL', message: `cpio: field ${n} does not fit 32 bits` });
  return n.toString(16).padStart(8, '0');
};
const pad4 = (n: number) => (4 - (n % 4)) % 4;

/**
 * Writes a newc cpio archive. Reproducible by construction: members sorted by path (so every directory
 * precedes what it holds), inode numbers assigned in that order, owner root, one fixed `mtime` (seconds),
 * no device numbers of the build host. Paths are relative (`bin/sh`, no leading slash, no `..`).
 */
export function writeCpio(entries: readonly CpioEntry[], opts: { mtime?: number } = {}): Buffer {
  const mtime = opts.mtime ?? 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.path === '' || e.path.startsWith('/') || e.path.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new MosError({ code: 'INTERNAL', message: `cpio: bad member path ${JSON.stringify(e.path)}` });
    }
    if (seen.has(e.path)) throw new MosError({ code: 'INTERNAL', message: `cpio: ${e.path} added twice` });
    seen.add(e.path);
  }
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const parts: Buffer[] = [];
  let ino = 1;
  const member = (name: string, mode: number, nlink: number, body: Uint8Array, rdev: [number, number] = [0, 0]) => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const header =
      '070701' +
      hex8(name === 'TRAILER!!!' ? 0 : ino++) +
      hex8(mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8(nlink) +
      hex8(name === 'TRAILER!!!' ? 0 : mtime) +
      hex8(body.length) +
      hex8(0) + // dev major
      hex8(0) + // dev minor
      hex8(rdev[0]) +
      hex8(rdev[1]) +
      hex8(nameBytes.length) +
      hex8(0); // check
    const head = Buffer.concat([Buffer.from(header, 'ascii'), nameBytes]);
    parts.push(head, Buffer.alloc(pad4(head.length)), Buffer.from(body.buffer, body.byteOffset, body.byteLength), Buffer.alloc(pad4(body.length)));
  };
  for (const e of sorted) {
    switch (e.kind) {
      case 'dir':
        member(e.path, typeBits(e), 2, new Uint8Array(0));
        break;
      case 'file':
        member(e.path, typeBits(e), 1, e.data);
        break;
      case 'symlink':
        member(e.path, typeBits(e), 1, Buffer.from(e.target, 'utf8'));
        break;
      case 'char':
      case 'block':
        member(e.path, typeBits(e), 1, new Uint8Array(0), [e.major, e.minor]);
        break;
    }
  }
  member('TRAILER!!!', 0, 1, new Uint8Array(0));
  return Buffer.concat(parts);
}
