import { homedir } from 'node:os';
import { join } from 'node:path';
import { MosError, describeSystemError } from '../../base/index.js';
import { readFileLimited } from '../../host/index.js';

/** An auth.json holds a few logins; 1 MiB refuses a mistaken or endless file. */
const MAX_AUTH_FILE_BYTES = 1024 * 1024;

/** A user name and password (or identity token) for one registry. Never logged, never put in errors. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/**
 * The auth files searched, in order, as the container tools do (containers-auth.json(5)):
 * `$REGISTRY_AUTH_FILE` alone when set; else `$XDG_RUNTIME_DIR/containers/auth.json` (where
 * `skopeo login` and `podman login` write), `$XDG_CONFIG_HOME/containers/auth.json` (default
 * `~/.config`), then `~/.docker/config.json`. The first file with an entry for the registry wins.
 */
export function defaultAuthFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const home = env.HOME || homedir();
  return [
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : []),
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'),
    join(home, '.docker', 'config.json'),
  ];
}

/** Credentials for `host/name` from the first of `files` that has an entry (missing files are skipped). */
export async function searchCredentials(files: readonly string[], host: string, name: string): Promise<Credentials | undefined> {
  for (const file of files) {
    const found = await loadCredentials(file, host, name);
    if (found) return found;
  }
  return undefined;
}

/** Strips a scheme and a trailing `/v1/`-style path from an `auths` key (docker writes `https://index.docker.io/v1/`). */
function normaliseKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '');
  if (k.endsWith('/')) k = k.slice(0, -1);
  k = k.replace(/\/v[12]$/, '');
  return k === 'index.docker.io' || k === 'registry-1.docker.io' ? 'docker.io' : k;
}

/**
 * Picks the credentials for `host/name` out of a docker config.json or containers auth.json document:
 * the most specific `auths` key among `host/name/...` prefixes and `host`, each entry either `auth`
 * (base64 `user:pass`) or `username`/`password`. Pure; throws REGISTRY_UNAUTHORIZED naming the file (never
 * the content) when the matching entry is malformed.
 */
export function credentialsFrom(doc: unknown, host: string, name: string, file: string): Credentials | undefined {
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (!auths || typeof auths !== 'object') return undefined;
  const wanted = normaliseKey(host);
  const entries = new Map<string, unknown>();
  for (const [k, v] of Object.entries(auths as Record<string, unknown>)) entries.set(normaliseKey(k), v);
  const parts = name.split('/');
  for (let n = parts.length; n >= 0; n--) {
    const key = n === 0 ? wanted : `${wanted}/${parts.slice(0, n).join('/')}`;
    const entry = entries.get(key) as { auth?: unknown; username?: unknown; password?: unknown; identitytoken?: unknown } | undefined;
    if (!entry || typeof entry !== 'object') continue;
    const bad = () => new MosError({ code: 'REGISTRY_UNAUTHORIZED', subject: `${file}: auths.${key}`, message: 'malformed credentials entry', hint: 'run "skopeo login" or "docker login" again' });
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = plain.indexOf(':');
      if (colon <= 0) throw bad();
      return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
    }
    if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
    if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') return { username: '<token>', password: entry.identitytoken };
  }
  return undefined;
}

/** Reads the auth file (a missing file means no credentials) and picks the entry for `host/name`. */
export async function loadCredentials(file: string, host: string, name: string): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = (await readFileLimited(file, MAX_AUTH_FILE_BYTES)).toString('utf8');
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') return undefined;
    // not a regular file, too large, unreadable: readFileLimited's error names the file and the limit
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_IO', subject: file, message: `cannot read auth file: ${describeSystemError(e)}`, cause: e });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // No cause: the parser's message may quote the file's content, which holds secrets.
    throw new MosError({ code: 'CONFIG_INVALID', subject: file, message: 'auth file is not valid JSON', hint: 'fix or remove the file, then log in again' });
  }
  return credentialsFrom(doc, host, name, file);
}
