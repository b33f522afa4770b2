import { MosError } from '../base/index.js';
import { readFileLimited, statOrAbsent, writeFileAtomic } from '../host/index.js';
import { systemPaths } from './paths.js';

/** The source a system follows (bootc's "tracked image"): what `mosctl upgrade` re-resolves. */
export interface TrackedSource {
  /** The reference as given to install, switch or a complete update (a tag, so it can move). */
  readonly source: string;
  /** `<sha>` of the install manifest it named last time. */
  readonly manifest: string;
  readonly time: string;
}

/** The tracked source, or undefined when none was recorded (a system installed before mosctl tracked). */
export async function readTracked(root: string): Promise<TrackedSource | undefined> {
  const file = systemPaths(root).trackedSource;
  if (!(await statOrAbsent(file))) return undefined;
  let v: Partial<TrackedSource>;
  try {
    v = JSON.parse((await readFileLimited(file, 64 * 1024)).toString('utf8')) as Partial<TrackedSource>;
  } catch (e) {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'is not JSON', hint: 'record the source again with mosctl switch SOURCE', cause: e });
  }
  if (typeof v.source !== 'string' || typeof v.manifest !== 'string' || typeof v.time !== 'string') {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'must hold source, manifest and time', hint: 'record the source again with mosctl switch SOURCE' });
  }
  return { source: v.source, manifest: v.manifest, time: v.time };
}

/** Records the tracked source (atomically; the caller holds the config lock). */
export async function writeTracked(root: string, t: TrackedSource): Promise<void> {
  await writeFileAtomic(systemPaths(root).trackedSource, JSON.stringify(t, null, 2) + '\n');
}

/** The tracked source, or a clear error saying how to set one. */
export async function requireTracked(root: string): Promise<TrackedSource> {
  const t = await readTracked(root);
  if (!t) {
    throw new MosError({ code: 'NOT_FOUND', subject: systemPaths(root).trackedSource, message: 'this system tracks no source', hint: 'name one with mosctl switch SOURCE (install and complete updates record theirs)' });
  }
  return t;
}

/** Where each install manifest was fetched from (`<sha>` → SOURCE), for `fsck --repair`. */
export async function readManifestSources(root: string): Promise<Record<string, string>> {
  const file = systemPaths(root).manifestSources;
  if (!(await statOrAbsent(file))) return {};
  try {
    const v = JSON.parse((await readFileLimited(file, 4 * 1024 * 1024)).toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')) return v as Record<string, string>;
  } catch {
    /* reported below */
  }
  throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'must be a JSON object of manifest sha to source', hint: 'remove it; repairs then need --source' });
}

/** Records that manifest `sha` came from `source` (the caller holds the config lock). */
export async function recordManifestSource(root: string, sha: string, source: string): Promise<void> {
  const all = await readManifestSources(root).catch(() => ({}) as Record<string, string>);
  if (all[sha] === source) return;
  all[sha] = source;
  await writeFileAtomic(systemPaths(root).manifestSources, JSON.stringify(all, null, 2) + '\n');
}
