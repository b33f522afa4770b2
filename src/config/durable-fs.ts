import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { PromiseFsClient } from 'isomorphic-git';
import { fsyncDir } from '../host/index.js';

type WriteOpts = string | { encoding?: BufferEncoding; mode?: number } | undefined;

/**
 * A node fs for isomorphic-git whose every file write is durable and atomic: written to a temp file in
 * `tmpDir` (same filesystem), fsync'd, renamed into place, directory fsync'd; new directories are
 * fsync'd into their parent. `sync: false` keeps the atomic rename but skips the fsyncs (for the worktree). isomorphic-git itself writes objects and refs in place, so a crash could
 * leave a truncated object that it would then never rewrite (it skips existing object files).
 */
export function durableFs(tmpDir: string, opts: { sync?: boolean } = {}): PromiseFsClient & { promises: { writeFile(path: string, data: string | Uint8Array, opts?: WriteOpts): Promise<void> } } {
  const sync = opts.sync ?? true;
  const writeFile = async (path: string, data: string | Uint8Array, wopts?: WriteOpts): Promise<void> => {
    const o = typeof wopts === 'string' ? { encoding: wopts as BufferEncoding } : (wopts ?? {});
    const tmp = join(tmpDir, `${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', o.mode ?? 0o644);
    try {
      try {
        await fh.writeFile(data, typeof data === 'string' ? (o.encoding ?? 'utf8') : undefined);
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, path);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw e; // isomorphic-git creates missing directories on ENOENT and retries
    }
    if (sync) await fsyncDir(dirname(path));
  };
  const mkdir = async (path: string, mkdirOpts?: unknown): Promise<void> => {
    await fsp.mkdir(path, mkdirOpts as undefined);
    if (sync) await fsyncDir(dirname(path));
  };
  return {
    promises: {
      readFile: fsp.readFile,
      writeFile,
      mkdir,
      rmdir: fsp.rmdir,
      unlink: fsp.unlink,
      stat: fsp.stat,
      lstat: fsp.lstat,
      readdir: fsp.readdir,
      readlink: fsp.readlink,
      symlink: fsp.symlink,
      chmod: fsp.chmod,
      rm: fsp.rm,
    } as unknown as PromiseFsClient['promises'] & { writeFile(path: string, data: string | Uint8Array, opts?: WriteOpts): Promise<void> },
  };
}
