import { Errors } from 'isomorphic-git';
import { MosError, describeSystemError } from '../base/index.js';

/** Wraps a failure reading or writing the repository once, at this module's edge. */
export function repoError(e: unknown, repoDir: string, doing: string): MosError {
  if (e instanceof MosError) return e;
  const host = e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string' && /^E[A-Z]+$/.test((e as { code: string }).code);
  if (host && !(e instanceof Errors.NotFoundError)) {
    return new MosError({ code: 'HOST_IO', subject: repoDir, message: `${doing}: ${describeSystemError(e)}`, cause: e });
  }
  return new MosError({
    code: 'CONFIG_CORRUPT',
    subject: repoDir,
    message: `${doing}: ${e instanceof Error ? e.message : String(e)}`,
    hint: 'the config repository is damaged; inspect it with git fsck',
    cause: e,
  });
}
