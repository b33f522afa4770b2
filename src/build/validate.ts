import type { MosError } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { MAX_MANIFEST_BYTES, checkManifestFile, type ManifestKind } from '../manifest/index.js';

/** One problem `validateManifestFile` found, as `--json` prints it. */
export type ValidationProblem = ReturnType<MosError['toJSON']>;

/** What `validateManifestFile` found: the format it recognised and every problem in it. */
export interface ValidateManifestResult {
  readonly file: string;
  readonly kind: ManifestKind;
  readonly valid: boolean;
  readonly problems: readonly ValidationProblem[];
}

/**
 * Reads a manifest.yaml, install.json or manifest.json (chosen by content, at most MAX_MANIFEST_BYTES)
 * and reports every problem in it, cross-target ones included. Reads only.
 */
export async function validateManifestFile(file: string): Promise<ValidateManifestResult> {
  const raw = await readFileLimited(file, MAX_MANIFEST_BYTES);
  const { kind, problems } = checkManifestFile(raw, file);
  return { file, kind, valid: problems.length === 0, problems: problems.map((p) => p.toJSON()) };
}
