import { MosError, type ErrorCode } from '../base/index.js';

/**
 * How scalars arrive: `yaml` is js-yaml's failsafe schema (every scalar a string, so `version: 1.0`
 * stays "1.0" as in Go's yaml), `json` is JSON.parse (typed, lenient like Go's encoding/json).
 */
export type Dialect = 'yaml' | 'json';

type Obj = Readonly<Record<string, unknown>>;

/** Joins a field path: `targets[2]` + `network` → `targets[2].network`. */
export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/**
 * Reads untrusted parsed documents field by field and collects every problem as a MosError whose
 * subject is `<file>: <path>`. Never throws (except for bugs), so a checker can report all faults.
 */
export class FieldReader {
  readonly problems: MosError[] = [];

  constructor(
    readonly file: string,
    readonly dialect: Dialect,
  ) {}

  /** Records a problem at `path` (the whole file when empty). */
  fail(path: string, message: string, hint?: string, code: ErrorCode = 'MANIFEST_INVALID'): void {
    this.problems.push(new MosError({ code, subject: path === '' ? this.file : `${this.file}: ${path}`, message, hint }));
  }

  /** A mapping, or undefined (with a problem unless absent and optional). */
  map(v: unknown, path: string, required = true): Obj | undefined {
    if (this.absent(v)) {
      if (required) this.fail(path, 'is missing');
      return undefined;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.fail(path, `must be a mapping, not ${describe(v)}`);
      return undefined;
    }
    return v as Obj;
  }

  /** Rejects keys outside `allowed`, suggesting the closest known key. */
  onlyKeys(o: Obj, allowed: readonly string[], path: string): void {
    for (const k of Object.keys(o)) {
      if (allowed.includes(k)) continue;
      const near = closest(k, allowed);
      this.fail(at(path, k), 'unknown key', near ? `did you mean "${near}"?` : `known keys: ${allowed.join(', ')}`);
    }
  }

  /** A string field; '' when absent. */
  str(o: Obj, key: string, path: string): string {
    const v = own(o, key);
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    this.fail(at(path, key), `must be a string, not ${describe(v)}`);
    return '';
  }

  /** A non-negative integer field (JS-safe); undefined when absent or bad (bad ones are reported). */
  int(o: Obj, key: string, path: string): number | undefined {
    const v = own(o, key);
    if (this.absent(v)) return undefined;
    const p = at(path, key);
    let n: number;
    if (this.dialect === 'yaml' && typeof v === 'string' && /^[0-9]{1,16}$/.test(v)) n = Number(v);
    else if (this.dialect === 'json' && typeof v === 'number') n = v;
    else {
      this.fail(p, `${describe(v)} is not a whole number`);
      return undefined;
    }
    if (!Number.isSafeInteger(n) || n < 0) {
      this.fail(p, `${n} is not a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`);
      return undefined;
    }
    return n;
  }

  /** A boolean field; false when absent. */
  bool(o: Obj, key: string, path: string): boolean {
    const v = own(o, key);
    if (this.absent(v)) return false;
    if (typeof v === 'boolean') return v;
    if (this.dialect === 'yaml' && typeof v === 'string') {
      if (/^(true|True|TRUE)$/.test(v)) return true;
      if (/^(false|False|FALSE)$/.test(v)) return false;
    }
    this.fail(at(path, key), `${describe(v)} is not true or false`);
    return false;
  }

  /** A sequence field; null when absent (mos's nil slice). */
  list(o: Obj, key: string, path: string): readonly unknown[] | null {
    const v = own(o, key);
    if (this.absent(v)) return null;
    if (Array.isArray(v)) return v;
    this.fail(at(path, key), `must be a list, not ${describe(v)}`);
    return null;
  }

  // An empty YAML value (`key:`), `~` and `null` are how YAML spells "not given" under the failsafe schema.
  private absent(v: unknown): boolean {
    if (v === undefined || v === null) return true;
    return this.dialect === 'yaml' && (v === '' || v === '~' || v === 'null' || v === 'Null' || v === 'NULL');
  }
}

/** An own property (never the prototype chain: `__proto__` and friends are just unknown keys). */
export function own(o: Obj, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

/** A short, bounded description of a bad value for messages. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const SYNONYMS: Readonly<Record<string, string>> = { name: 'service_name', type: 'service_type', image: 'source' };

/** The known key a typo most likely meant, or undefined. */
export function closest(key: string, known: readonly string[]): string | undefined {
  const syn = SYNONYMS[key];
  if (syn !== undefined && known.includes(syn)) return syn;
  const k = key.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestD = Infinity;
  for (const cand of known) {
    const d = cand === k ? 0 : editDistance(k.slice(0, 64), cand);
    if (d < bestD) [best, bestD] = [cand, d];
  }
  return bestD <= Math.max(2, Math.floor((best?.length ?? 0) / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
