import { join } from 'node:path';
import { MosError } from '../base/index.js';
import { lstatOrAbsent, readFileLimited } from '../host/index.js';
import type { ContainerSpec } from './types.js';

const MAX_DB = 4 * 1024 * 1024;

/** A user resolved against an image's /etc/passwd and /etc/group. */
export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  readonly home?: string;
}

/** Parses passwd(5) text into name → entry (pure). */
export function parsePasswd(text: string): Map<string, { uid: number; gid: number; home: string }> {
  const out = new Map<string, { uid: number; gid: number; home: string }>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    if (!out.has(f[0]!)) out.set(f[0]!, { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

/** Parses group(5) text into name → gid (pure). */
export function parseGroup(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && /^\d+$/.test(f[2]!) && !out.has(f[0]!)) out.set(f[0]!, Number(f[2]));
  }
  return out;
}

/**
 * Resolves an image `User` (`name`, `uid`, `name:group`, `uid:gid`, ...) with Docker's rules against the
 * given passwd/group texts (pure): a name must exist; without a group the passwd gid is used, else 0.
 */
export function resolveUser(user: string, passwd: string, group: string, subject: string): ResolvedUser {
  const [u = '', g, extra] = user.split(':');
  if (u === '' || extra !== undefined || g === '') throw new MosError({ code: 'INPUT_INVALID', subject, message: `user ${JSON.stringify(user)} is not user[:group]` });
  const users = parsePasswd(passwd);
  const numeric = /^\d+$/.test(u);
  const entry = numeric ? [...users.values()].find((e) => e.uid === Number(u)) : users.get(u);
  if (!numeric && !entry) throw new MosError({ code: 'INPUT_INVALID', subject, message: `user ${JSON.stringify(u)} is not in the image's /etc/passwd` });
  const uid = numeric ? Number(u) : entry!.uid;
  let gid = entry?.gid ?? 0;
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const found = parseGroup(group).get(g);
      if (found === undefined) throw new MosError({ code: 'INPUT_INVALID', subject, message: `group ${JSON.stringify(g)} is not in the image's /etc/group` });
      gid = found;
    }
  }
  if (uid > 2 ** 32 - 2 || gid > 2 ** 32 - 2) throw new MosError({ code: 'INPUT_INVALID', subject, message: `user ${user} is out of range` });
  return entry?.home ? { uid, gid, home: entry.home } : { uid, gid };
}

/**
 * Returns `spec` with `user` made numeric (`uid:gid`) and `home` set, reading the rootfs's /etc/passwd and
 * /etc/group (symlinks there are not followed: they could point out of the rootfs).
 */
export async function resolveSpecUser(spec: ContainerSpec): Promise<ContainerSpec> {
  if (spec.user === undefined || spec.user === '') return spec;
  const subject = `container ${spec.name}: user`;
  const [passwd, group] = await Promise.all([readDb(spec.rootfs, 'passwd'), readDb(spec.rootfs, 'group')]);
  const r = resolveUser(spec.user, passwd, group, subject);
  return { ...spec, user: `${r.uid}:${r.gid}`, ...(r.home !== undefined ? { home: r.home } : {}) };
}

async function readDb(rootfs: string, name: string): Promise<string> {
  for (const p of [join(rootfs, 'etc'), join(rootfs, 'etc', name)]) {
    const st = await lstatOrAbsent(p);
    if (st === undefined) return ''; // no /etc/passwd (or group) in the image: names cannot resolve
    if (st.isSymbolicLink()) throw new MosError({ code: 'INPUT_INVALID', subject: p, message: 'is a symlink; not followed when resolving the image user' });
  }
  return (await readFileLimited(join(rootfs, 'etc', name), MAX_DB)).toString('utf8');
}

