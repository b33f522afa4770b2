import { appendFile } from 'node:fs/promises';
import { MosError } from '../base/index.js';
import { ensureDir, readFileLimited, statOrAbsent } from '../host/index.js';
import { systemPaths } from './paths.js';

/** One record of `config/audit.jsonl`: a request that changed (or tried to change) something. */
export interface AuditEntry {
  readonly time: string;
  /** Client certificate subject DN and SHA-256 fingerprint of its DER. */
  readonly subject: string;
  readonly fingerprint: string;
  readonly role: string;
  /** What was asked: `POST /v1/operations update apply`, `POST /v1/rollback` … */
  readonly action: string;
  /** HTTP status answered and, for an accepted operation, its id; for a refusal, the error code. */
  readonly status: number;
  readonly operation?: string;
  readonly error?: string;
}

const MAX_AUDIT_BYTES = 256 * 1024 * 1024;

/**
 * Appends one entry (one line, O_APPEND, so concurrent writers never interleave within a line). The file
 * is only ever appended to; nothing in mosctl rewrites or truncates it.
 */
export async function appendAudit(root: string, entry: AuditEntry): Promise<void> {
  const p = systemPaths(root);
  await ensureDir(p.configDir);
  await appendFile(p.auditLog, JSON.stringify(entry) + '\n', { mode: 0o600, flag: 'a' });
}

/** The audit log, oldest first, each entry with its line number (`n`, from 1); `after` skips lines. */
export async function readAudit(root: string, opts: { after?: number; limit?: number } = {}): Promise<(AuditEntry & { readonly n: number })[]> {
  const file = systemPaths(root).auditLog;
  if (!(await statOrAbsent(file))) return [];
  const out: (AuditEntry & { n: number })[] = [];
  const lines = (await readFileLimited(file, MAX_AUDIT_BYTES)).toString('utf8').split('\n');
  for (let i = opts.after ?? 0; i < lines.length && out.length < (opts.limit ?? Infinity); i++) {
    const line = lines[i]!;
    if (!line) continue;
    try {
      out.push({ n: i + 1, ...(JSON.parse(line) as AuditEntry) });
    } catch (e) {
      // A torn last line after a crash is expected; anything else in the middle is damage.
      if (i < lines.length - 2) throw new MosError({ code: 'CONFIG_CORRUPT', subject: `${file}:${i + 1}`, message: 'is not a JSON audit record', cause: e });
    }
  }
  return out;
}
