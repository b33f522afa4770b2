import { homedir } from 'node:os';
import { join } from 'node:path';
import { MosError, describeSystemError } from '../../base/index.js';
import { exec, readFileLimited } from '../../host/index.js';

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
 * `~/.config`), then `~/.docker/config.json`, then the site bundle's `/etc/mosctl/site/auth.json`. The
 * first file with an entry for the registry wins.
 */
export function defaultAuthFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const home = env.HOME || homedir();
  return [
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : []),
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'),
    join(home, '.docker', 'config.json'),
    SITE_AUTH_FILE,
  ];
}

/**
 * The registry credentials a site bundle carries (README "Site bundles"; mosctl writes it, 0600, from the
 * bundle in force): searched last, so a user's own login wins. Same path as SITE_FILES.auth in src/machine.
 */
export const SITE_AUTH_FILE = '/etc/mosctl/site/auth.json';

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

/** The helper a document names for `host`: its `credHelpers` entry, else `credsStore` (docker and containers semantics). */
export function helperFor(doc: unknown, host: string): { name: string; from: 'credHelpers' | 'credsStore' } | undefined {
  const d = doc as { credHelpers?: unknown; credsStore?: unknown } | null;
  const wanted = normaliseKey(host);
  if (d?.credHelpers && typeof d.credHelpers === 'object') {
    for (const [k, v] of Object.entries(d.credHelpers as Record<string, unknown>)) {
      if (normaliseKey(k) === wanted && typeof v === 'string' && v !== '') return { name: v, from: 'credHelpers' };
    }
  }
  if (typeof d?.credsStore === 'string' && d.credsStore !== '') return { name: d.credsStore, from: 'credsStore' };
  return undefined;
}

/** A helper's name becomes part of a program name: keep it to what docker's helpers are called. */
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Asks `docker-credential-<helper> get` for `host`'s credentials (the docker credential-helper protocol:
 * the server on stdin, `{"ServerURL","Username","Secret"}` on stdout; a Username of `<token>` means an
 * identity token). "Not found" is no credentials. Output is capped and never put in an error or a log.
 */
export async function credentialsFromHelper(helper: string, host: string, file: string): Promise<Credentials | undefined> {
  const subject = `${file}: credential helper ${JSON.stringify(helper)}`;
  if (!HELPER_NAME.test(helper)) throw new MosError({ code: 'CONFIG_INVALID', subject, message: 'is not a valid helper name' });
  const program = `docker-credential-${helper}`;
  // Docker Hub is asked for by the URL docker login stores it under.
  const server = normaliseKey(host) === 'docker.io' ? 'https://index.docker.io/v1/' : host;
  let out: { code: number; stdout: string };
  try {
    out = await exec([program, 'get'], { input: server, timeoutMs: 30_000, maxStdout: 64 * 1024, okCodes: [0, 1] });
  } catch (e) {
    const missing = e instanceof MosError && e.code === 'HOST_TOOL_MISSING';
    throw new MosError({
      code: 'REGISTRY_UNAUTHORIZED',
      subject,
      message: missing ? `${program} is not installed (or not on PATH)` : `${program} failed`,
      hint: missing ? `install ${program}, or remove the helper from the auth file` : 'run it by hand: echo HOST | ' + program + ' get',
    });
  }
  if (out.code !== 0) {
    // docker-credential-* print "credentials not found in native keychain" and exit 1 for an unknown server.
    if (/not found/i.test(out.stdout)) return undefined;
    throw new MosError({ code: 'REGISTRY_UNAUTHORIZED', subject, message: `${program} get exited 1`, hint: 'run it by hand: echo HOST | ' + program + ' get' });
  }
  let v: { Username?: unknown; Secret?: unknown };
  try {
    v = JSON.parse(out.stdout) as typeof v;
  } catch {
    throw new MosError({ code: 'REGISTRY_UNAUTHORIZED', subject, message: `${program} get printed no JSON` });
  }
  if (typeof v?.Secret !== 'string' || v.Secret === '') return undefined;
  return { username: typeof v.Username === 'string' && v.Username !== '' ? v.Username : '<token>', password: v.Secret };
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
  // A credHelpers entry for the registry wins over auths; credsStore is asked when auths has nothing.
  const helper = helperFor(doc, host);
  if (helper?.from === 'credHelpers') return credentialsFromHelper(helper.name, host, file);
  const found = credentialsFrom(doc, host, name, file);
  if (found || !helper) return found;
  return credentialsFromHelper(helper.name, host, file);
}
