import { randomBytes } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MosError, describeSystemError } from '../../base/index.js';
import { acquireLock, ensureDir, exists, fsyncDir, processAlive, readFileLimited, writeFileAtomic } from '../../host/index.js';
import { OCI_LAYOUT_HEADER } from '../media-types.js';
import { INGEST_DIR } from './blobs.js';
import { emptyLayoutIndex, serializeLayoutIndex } from './index-file.js';

// Creating a layout, crash-safe and race-safe: built aside and renamed into place, or (for an existing
// empty directory such as a mount point) filled in place with `oci-layout` written last.

/** The layout header file (image-layout.md). */
export const LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
/** The lock file index.json writers hold. */
export const LOCK_FILE = '.lock';
/** What may already be in a directory we are asked to create a layout in (a crash during creation). */
const CREATION_LEFTOVERS = /^(\.lock|blobs|ingest|index\.json|\.(index\.json|oci-layout)\.tmp-.*)$/;

/** The header bytes, or 'absent'. */
export type Header = 'absent' | Buffer;

/** Reads `<dir>/oci-layout` (at most 4 KiB); 'absent' when it does not exist. */
export async function readHeader(dir: string): Promise<Header> {
  try {
    return await readFileLimited(join(dir, LAYOUT_FILE), 4096);
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') return 'absent';
    throw new MosError({ code: 'OCI_LAYOUT_INVALID', subject: join(dir, LAYOUT_FILE), message: (e as Error).message, cause: e });
  }
}

/** Refuses a header whose imageLayoutVersion is not 1.x.y (OCI_LAYOUT_INVALID). */
export async function readHeaderVersion(dir: string, bytes: Buffer): Promise<void> {
  const path = join(dir, LAYOUT_FILE);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    doc = undefined;
  }
  const version = (doc as { imageLayoutVersion?: unknown } | undefined)?.imageLayoutVersion;
  if (typeof version !== 'string' || !/^1\.\d+\.\d+$/.test(version)) {
    throw new MosError({ code: 'OCI_LAYOUT_INVALID', subject: path, message: `imageLayoutVersion ${JSON.stringify(version)} is not 1.x.y`, hint: `${OCI_LAYOUT_HEADER} must be {"imageLayoutVersion": "1.0.0"}` });
  }
}

/**
 * Creates a layout at `dir` (missing, or an empty directory). Idempotent and safe against concurrent
 * creators; a non-empty foreign directory is refused (OCI_LAYOUT_INVALID).
 */
export async function createLayout(dir: string): Promise<void> {
  let names: string[] | undefined;
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MosError({ code: 'OCI_LAYOUT_INVALID', subject: dir, message: `cannot create a layout here: ${describeSystemError(e)}`, cause: e });
    }
  }
  // A new directory: build the whole layout aside and rename it into place, so that no reader ever
  // sees a half-made layout (a SIGKILL leaves only a `.NAME.creating-PID-*` sibling, swept later).
  if (names === undefined) {
    if (await createAside(dir)) return;
    names = await readdir(dir).catch(() => []); // another creator's directory appeared meanwhile
  }
  const foreign = names.filter((n) => !CREATION_LEFTOVERS.test(n));
  if (foreign.length > 0) {
    throw new MosError({
      code: 'OCI_LAYOUT_INVALID',
      subject: dir,
      message: `not an OCI layout and not empty (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''})`,
      hint: 'name an empty or new directory for the layout',
    });
  }
  // An existing empty directory (perhaps a mount point, which cannot be renamed over): fill it in place.
  await ensureDir(join(dir, 'blobs', 'sha256'));
  await ensureDir(join(dir, INGEST_DIR));
  const lock = await acquireLock(join(dir, LOCK_FILE), { wait: true });
  try {
    // index.json first, oci-layout last: the header marks a complete layout. Another creator may have
    // finished while we waited for the lock: then keep its index.json.
    if (!(await exists(join(dir, INDEX_FILE)))) {
      await writeFileAtomic(join(dir, INDEX_FILE), serializeLayoutIndex(emptyLayoutIndex()));
    }
    if ((await readHeader(dir)) === 'absent') await writeFileAtomic(join(dir, LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  } finally {
    await lock.release();
  }
}

const CREATING = /^\.(.+)\.creating-(\d+)-[0-9a-f]+$/;

/**
 * Creates the layout at `dir` (which does not exist) in a sibling directory and renames it into place.
 * Returns false when another creator won the race with a directory that is not (yet) a layout, so the
 * caller falls back to filling it in place.
 */
async function createAside(dir: string): Promise<boolean> {
  const parent = dirname(dir);
  const name = basename(dir);
  await ensureDir(parent);
  await sweepAbandonedCreations(parent, name);
  const tmp = join(parent, `.${name}.creating-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await ensureDir(join(tmp, 'blobs', 'sha256'));
    await ensureDir(join(tmp, INGEST_DIR));
    await writeFileAtomic(join(tmp, INDEX_FILE), serializeLayoutIndex(emptyLayoutIndex()));
    await writeFileAtomic(join(tmp, LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    try {
      await rename(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY') return (await readHeader(dir)) !== 'absent';
      throw new MosError({ code: 'HOST_IO', subject: dir, message: `cannot create the layout: ${describeSystemError(e)}`, cause: e });
    }
    await fsyncDir(parent);
    return true;
  } finally {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

/** Removes `.NAME.creating-PID-*` directories whose creator is gone (killed mid-creation). */
async function sweepAbandonedCreations(parent: string, name: string): Promise<void> {
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const entry of entries) {
    const m = CREATING.exec(entry);
    if (m === null || m[1] !== name || processAlive(Number(m[2]))) continue;
    await rm(join(parent, entry), { recursive: true, force: true }).catch(() => {});
  }
}

