import { MosError } from '../base/index.js';
import { writeFileAtomic } from '../host/index.js';
import { readStateFile } from './state-file.js';
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
  const v = await readStateFile(systemPaths(root).trackedSource, {
    maxBytes: 64 * 1024,
    valid: (x): x is TrackedSource => ['source', 'manifest', 'time'].every((k) => typeof (x as Record<string, unknown> | null)?.[k] === 'string'),
    shape: 'an object with source, manifest and time',
    hint: 'record the source again with mosctl switch SOURCE',
  });
  return v && { source: v.source, manifest: v.manifest, time: v.time };
}

/**
 * Records the tracked source (atomically; the caller holds the config lock). A record that already
 * names this source and manifest is kept as it is (with its time): a no-op update writes nothing.
 */
export async function writeTracked(root: string, t: TrackedSource): Promise<void> {
  const had = await readTracked(root).catch(() => undefined);
  if (had?.source === t.source && had.manifest === t.manifest) return;
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
  const v = await readStateFile(systemPaths(root).manifestSources, {
    maxBytes: 4 * 1024 * 1024,
    valid: (x): x is Record<string, string> => !!x && typeof x === 'object' && !Array.isArray(x) && Object.values(x).every((s) => typeof s === 'string'),
    shape: 'a JSON object of manifest sha to source',
    hint: 'remove it; repairs then need --source',
  });
  return v ?? {};
}

/** Records that manifest `sha` came from `source` (the caller holds the config lock). */
export async function recordManifestSource(root: string, sha: string, source: string): Promise<void> {
  const all = await readManifestSources(root).catch(() => ({}) as Record<string, string>);
  if (all[sha] === source) return;
  all[sha] = source;
  await writeFileAtomic(systemPaths(root).manifestSources, JSON.stringify(all, null, 2) + '\n');
}
