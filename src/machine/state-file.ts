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
