import { MosError } from '../base/index.js';
import { MANIFEST_VERSION, UPDATE_TYPES } from './constants.js';
import { decodeText, loadYaml } from './decode.js';
import { readStorageItems } from './fields.js';
import { at, describe, FieldReader } from './reader.js';
import { sourceProblem } from './source.js';
import { checkTargetSet, readTarget, type TargetFacts } from './targets.js';
import type { ImportFile, UpdateType, UserTarget } from './types.js';

const TOP_KEYS = ['version', 'product', 'update_type', 'storage', 'targets'] as const;
const TARGET_KEYS = ['service_name', 'source', 'version', 'service_type', 'network', 'nsgroup', 'digest', 'size', 'storage'] as const;

/** Result of checking a document: the value when there were no problems, and every problem found. */
export interface CheckResult<T> {
  readonly value?: T;
  readonly problems: readonly MosError[];
}

/**
 * Checks manifest.yaml text completely and reports every problem (subjects `<file>: <field path>`).
 * Unknown keys are refused with a did-you-mean; size and aliases are bounded. Pure.
 */
export function checkImportFile(text: string | Uint8Array, file: string): CheckResult<ImportFile> {
  const r = new FieldReader(file, 'yaml');
  const decoded = decodeText(r, text);
  const doc = decoded === undefined ? undefined : loadYaml(r, decoded);
  if (r.problems.length > 0) return { problems: r.problems };
  const o = r.map(doc, '');
  if (!o) return { problems: r.problems };
  r.onlyKeys(o, TOP_KEYS, '');
  checkVersion(r, o);
  const product = r.str(o, 'product', '');
  checkProduct(r, product);
  const update_type = r.str(o, 'update_type', '');
  if (!(UPDATE_TYPES as readonly string[]).includes(update_type)) {
    r.fail('update_type', update_type === '' ? 'is missing' : `unknown update_type ${describe(update_type)}`, 'use complete (replace all targets) or partial (add or replace the listed ones)');
  }
  const storage = readStorageItems(r, r.list(o, 'storage', ''), 'storage', true);
  const list = r.list(o, 'targets', '');
  if (list === null || list.length === 0) r.fail('targets', list === null ? 'is missing' : 'must list at least one target');
  const facts: (TargetFacts | undefined)[] = [];
  const targets: UserTarget[] = [];
  (list ?? []).forEach((v, i) => {
    const p = at('targets', i);
    const t = r.map(v, p);
    if (!t) return void facts.push(undefined);
    r.onlyKeys(t, TARGET_KEYS, p);
    const source = r.str(t, 'source', p);
    const why = source === '' ? 'is missing' : sourceProblem(source);
    if (why) r.fail(at(p, 'source'), why, 'use docker://HOST[:PORT]/NAME:TAG, HOST[:PORT]/NAME@sha256:HEX or oci:DIR:TAG');
    const { value: c, facts: f } = readTarget(r, t, p, { strict: true, pinned: false });
    facts.push(f);
    if (c) {
      const { digest, size, ...rest } = c;
      targets.push({ ...rest, source, ...(digest !== '' ? { digest } : {}), ...(size !== undefined ? { size } : {}) });
    }
  });
  checkTargetSet(r, facts, storage, update_type as UpdateType);
  if (r.problems.length > 0) return { problems: r.problems };
  return { value: { version: MANIFEST_VERSION, product, update_type: update_type as UpdateType, storage, targets }, problems: [] };
}

/** Parses manifest.yaml; throws the first problem (a MosError naming file and field). Pure. */
export function parseImportFile(text: string | Uint8Array, file: string): ImportFile {
  const { value, problems } = checkImportFile(text, file);
  if (value === undefined) throw problems[0] ?? new MosError({ code: 'INTERNAL', subject: file, message: 'no value and no problem' });
  return value;
}

/** version must be 1: MANIFEST_UNSUPPORTED for another number. */
export function checkVersion(r: FieldReader, o: Readonly<Record<string, unknown>>): void {
  const before = r.problems.length;
  const version = r.int(o, 'version', '');
  if (version === undefined) {
    if (r.problems.length === before) r.fail('version', 'is missing', `write version: ${MANIFEST_VERSION}`);
  } else if (version !== MANIFEST_VERSION) {
    r.fail('version', `unsupported manifest version ${version} (only ${MANIFEST_VERSION} is known)`, undefined, 'MANIFEST_UNSUPPORTED');
  }
}

/** product must be a non-empty single line (mos compares it across updates). */
export function checkProduct(r: FieldReader, product: string): void {
  if (product === '') r.fail('product', 'is missing', 'name the product, e.g. a UUID');
  else if (/[\0-\x1f]/.test(product) || product.length > 256) r.fail('product', 'must be one line of at most 256 printable characters');
}
