import { MosError } from '../base/index.js';
import { readFileLimited, statOrAbsent } from '../host/index.js';

/**
 * Reads one of mosctl's small JSON state files under `config/` (pins, tracked source, manifest sources):
 * undefined when absent; CONFIG_CORRUPT naming the file and the expected `shape` when it is not JSON or
 * `valid` refuses it.
 */
export async function readStateFile<T>(file: string, opts: { readonly maxBytes: number; readonly valid: (v: unknown) => v is T; readonly shape: string; readonly hint: string }): Promise<T | undefined> {
  if (!(await statOrAbsent(file))) return undefined;
  let v: unknown;
  try {
    v = JSON.parse((await readFileLimited(file, opts.maxBytes)).toString('utf8'));
  } catch (e) {
    throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: 'is not JSON', hint: opts.hint, cause: e });
  }
  if (!opts.valid(v)) throw new MosError({ code: 'CONFIG_CORRUPT', subject: file, message: `must be ${opts.shape}`, hint: opts.hint });
  return v;
}

/**
 * What a target's live record says it runs (`var/lib/lxc/T/mosctl-state.json` of a container,
 * `run/mosctl/active/T.json` of an fs-only mount): its digest and version, each absent when the record
 * is missing, damaged or lacks it. Never throws: a lost record only means "not known".
 */
export async function readTargetRecord(file: string): Promise<{ readonly digest?: string; readonly version?: string }> {
  let v: unknown;
  try {
    v = JSON.parse((await readFileLimited(file, 64 * 1024)).toString('utf8'));
  } catch {
    return {};
  }
  const r = (v !== null && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  return { ...(typeof r['version'] === 'string' ? { version: r['version'] } : {}), ...(typeof r['digest'] === 'string' ? { digest: r['digest'] } : {}) };
}
