import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DOWNLOADER_USER, MosError, describeSystemError, type Logger } from '../../base/index.js';

/** The downloader's default user name (src/base), and the id it gets when mosctl creates it. */
export { DOWNLOADER_USER };
export const DOWNLOADER_DEFAULT_ID = 64090;

/** A uid and gid to run the downloader as. */
export interface DownloaderIds {
  readonly uid: number;
  readonly gid: number;
  /** The user name, when the ids came from one. */
  readonly name?: string;
  /** True when this call added the user to `<etc>/passwd` and `<etc>/group`. */
  readonly created?: boolean;
}

export interface IdsOptions {
  /** The account database's directory; default /etc. */
  readonly etc?: string;
  readonly log?: Logger;
}

/**
 * The ids for `--downloader-user SPEC`: `UID` or `UID:GID` as numbers (no account needed: the initrd
 * has none), or a user name looked up in `<etc>/passwd`. A missing name is created the way
 * systemd-sysusers does (a locked system account, no home, nologin shell) with id 64090 or the next
 * free one; where `/etc` cannot be written (a read-only root), the ids are used without an entry.
 * Root (0) is refused.
 */
export function downloaderIds(spec: string, opts?: IdsOptions & { readonly create?: true }): Promise<DownloaderIds>;
export function downloaderIds(spec: string, opts: IdsOptions & { readonly create: false }): Promise<DownloaderIds | undefined>;
export async function downloaderIds(spec: string, opts: IdsOptions & { readonly create?: boolean } = {}): Promise<DownloaderIds | undefined> {
  const bad = (message: string) => new MosError({ code: 'USAGE', subject: '--downloader-user', message, hint: 'pass a user name, UID or UID:GID (not root), or off' });
  const m = /^(\d{1,9})(?::(\d{1,9}))?$/.exec(spec);
  if (m) {
    const uid = Number(m[1]);
    const gid = m[2] !== undefined ? Number(m[2]) : uid;
    if (uid === 0 || gid === 0) throw bad(`${spec}: the downloader never runs as root`);
    return { uid, gid };
  }
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(spec)) throw bad(`${JSON.stringify(spec)} is not a user name`);
  const etc = opts.etc ?? '/etc';
  const passwd = await readOptional(join(etc, 'passwd'));
  const group = await readOptional(join(etc, 'group'));
  const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[0] === spec);
  if (entry) {
    const uid = Number(entry[2]);
    const gid = Number(entry[3]);
    if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) throw bad(`${join(etc, 'passwd')}: the entry of ${spec} has no numeric uid/gid`);
    if (uid === 0 || gid === 0) throw bad(`${spec} is uid ${uid}, gid ${gid}: the downloader never runs as root`);
    return { uid, gid, name: spec };
  }
  if (opts.create === false) return undefined;
  const used = new Set([...ids(passwd, 2), ...ids(group, 2)]);
  let id = DOWNLOADER_DEFAULT_ID;
  while (used.has(id)) id++;
  try {
    await appendFile(join(etc, 'group'), `${group && !group.endsWith('\n') ? '\n' : ''}${spec}:x:${id}:\n`);
    await appendFile(join(etc, 'passwd'), `${passwd && !passwd.endsWith('\n') ? '\n' : ''}${spec}:x:${id}:${id}:mosctl downloader:/nonexistent:/usr/sbin/nologin\n`);
  } catch (e) {
    opts.log?.debug(`cannot add user ${spec} (${describeSystemError(e)}): the downloader runs as uid ${id} without an entry`);
    return { uid: id, gid: id, name: spec };
  }
  opts.log?.info(`added system user ${spec} (uid ${id}) for the downloader`);
  return { uid: id, gid: id, name: spec, created: true };
}

function ids(text: string, field: number): number[] {
  return text.split('\n').map((l) => Number(l.split(':')[field])).filter((n) => Number.isSafeInteger(n));
}

async function readOptional(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new MosError({ code: 'HOST_IO', subject: path, message: `cannot read: ${describeSystemError(e)}`, cause: e });
  }
}
