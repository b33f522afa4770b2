import { MosError, sha256Hex } from '../base/index.js';
import { UPDATE_TYPES } from './constants.js';
import { decodeText, loadJson } from './decode.js';
import { readStorageItems } from './fields.js';
import { checkProduct, checkVersion, type CheckResult } from './import-file.js';
import { at, describe, FieldReader } from './reader.js';
import { checkTargetSet, readTarget, type ReadTarget } from './targets.js';
import type { InstallFile, InstallManifest, InstallTarget } from './types.js';

/**
 * Checks install.json bytes completely. Read like mos (unknown keys ignored, so mos-made files keep
 * working) but validated strictly: digests, sizes, names, ports, storage, version 1. Pure.
 */
export function checkInstallFile(raw: Uint8Array, file: string): CheckResult<InstallManifest> {
  const r = new FieldReader(file, 'json');
  const text = decodeText(r, raw);
  const doc = text === undefined ? undefined : loadJson(r, text);
  if (r.problems.length > 0) return { problems: r.problems };
  const o = r.map(doc, '');
  if (!o) return { problems: r.problems };
  checkVersion(r, o);
  const product = r.str(o, 'product', '');
  checkProduct(r, product);
  const update_type = r.str(o, 'update_type', '');
  if (update_type !== '' && !(UPDATE_TYPES as readonly string[]).includes(update_type)) {
    r.fail('update_type', `unknown update_type ${describe(update_type)}`, 'use complete or partial');
  }
  const storage = readStorageItems(r, r.list(o, 'storage', ''), 'storage', false);
  const list = r.list(o, 'targets', '');
  if (list === null || list.length === 0) r.fail('targets', list === null ? 'is missing' : 'must list at least one target');
  const read: (ReadTarget | undefined)[] = [];
  (list ?? []).forEach((v, i) => {
    const p = at('targets', i);
    const t = r.map(v, p);
    read.push(t ? readTarget(r, t, p, { strict: false, pinned: true }) : undefined);
  });
  const kind = update_type === '' ? 'partial' : (update_type as InstallFile['update_type']);
  checkTargetSet(r, read.map((x) => x?.facts), storage, kind);
  if (r.problems.length > 0) return { problems: r.problems };
  const targets: InstallTarget[] = read.map((x) => ({ ...x!.value!, size: x!.value!.size! }));
  const value: InstallFile = { version: 1, product, storage, targets, update_type: update_type as InstallFile['update_type'] };
  return { value: { raw, sha: sha256Hex(raw), value }, problems: [] };
}

/**
 * Parses install.json, keeping the exact bytes (what is signed and stored; never re-serialize them).
 * Throws the first problem as a MosError naming file and field. Pure.
 */
export function parseInstallManifest(raw: Uint8Array, file: string): InstallManifest {
  const { value, problems } = checkInstallFile(raw, file);
  if (value === undefined) throw problems[0] ?? new MosError({ code: 'INTERNAL', subject: file, message: 'no value and no problem' });
  return value;
}
