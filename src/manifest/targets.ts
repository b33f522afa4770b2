import { HOSTFS_NAME } from './constants.js';
import { digestOk, nameProblem, nsgroupOk, readNetwork, readServiceType, readTargetStorage } from './fields.js';
import { at, own, type FieldReader } from './reader.js';
import type { InstallTarget, StorageItem, UpdateType } from './types.js';

type Obj = Readonly<Record<string, unknown>>;

/** The fields manifest.yaml targets and install.json targets share (manifest.yaml may omit the size). */
export type CommonTarget = Omit<InstallTarget, 'size'> & { readonly size: number | undefined };

/** What could be read of a target even when some of its fields are bad: enough for the cross-target rules. */
export type TargetFacts = Partial<Pick<CommonTarget, 'service_name' | 'service_type' | 'network' | 'storage'>>;

/** One target as read: its value when every field was good, and the facts the set rules need. */
export interface ReadTarget {
  readonly value: CommonTarget | undefined;
  readonly facts: TargetFacts;
}

/**
 * Reads one target's shared fields. `pinned` (install.json) requires digest and size; manifest.yaml
 * may give them to be checked. `value` is undefined when any field was bad (all reported); `facts`
 * keeps the good fields, so the rules across targets still run and report in the same pass.
 */
export function readTarget(r: FieldReader, o: Obj, path: string, opts: { strict: boolean; pinned: boolean }): ReadTarget {
  const before = r.problems.length;
  const service_name = r.str(o, 'service_name', path);
  const np = at(path, 'service_name');
  if (service_name === '') r.fail(np, 'is missing');
  else if (nameProblem(service_name)) r.fail(np, nameProblem(service_name)!);
  const version = r.str(o, 'version', path);
  if (version === '') r.fail(at(path, 'version'), 'is missing', 'give the target a version, e.g. 1.0.0');
  else if (/[\0\n]/.test(version) || version.length > 128) r.fail(at(path, 'version'), 'must be one line of at most 128 characters');
  const service_type = readServiceType(r, o, path);
  const network = readNetwork(r, own(o, 'network'), at(path, 'network'), opts.strict);
  const nsgroup = r.str(o, 'nsgroup', path);
  nsgroupOk(r, nsgroup, at(path, 'nsgroup'));
  const digest = r.str(o, 'digest', path);
  digestOk(r, digest, at(path, 'digest'), opts.pinned);
  const beforeSize = r.problems.length;
  const size = r.int(o, 'size', path);
  if (size === 0) r.fail(at(path, 'size'), 'must be positive (bytes of the image manifest)');
  else if (size === undefined && opts.pinned && r.problems.length === beforeSize) r.fail(at(path, 'size'), 'is missing (bytes of the image manifest)');
  const storage = readTargetStorage(r, r.list(o, 'storage', path), at(path, 'storage'), opts.strict);
  const facts: TargetFacts = {
    ...(service_name !== '' && nameProblem(service_name) === undefined ? { service_name } : {}),
    ...(service_type !== undefined ? { service_type } : {}),
    ...(network !== undefined ? { network } : {}),
    storage,
  };
  if (r.problems.length !== before || service_type === undefined || network === undefined) {
    // A target is never dropped without a word: if a reader refused a field silently, say so here.
    if (r.problems.length === before) r.fail(path, 'could not be read (a field is empty or null where a value is needed)');
    return { value: undefined, facts };
  }
  return { value: { service_name, version, service_type, network, nsgroup, digest, size, storage }, facts };
}

/**
 * Rules across targets: names unique; at most one hostfs target, named `hostfs` (create-boot-fs
 * mounts it by that name); no host port forwarded twice; storage labels declared. A partial update may
 * use labels an earlier manifest declared, so references are only checked for `complete`.
 */
export function checkTargetSet(
  r: FieldReader,
  targets: readonly (TargetFacts | undefined)[],
  storage: readonly StorageItem[] | null,
  updateType: UpdateType | '',
): void {
  const names = new Map<string, number>();
  const ports = new Map<number, string>();
  const labels = new Set((storage ?? []).map((s) => s.label));
  let hostfs: number | undefined;
  targets.forEach((t, i) => {
    if (!t) return;
    const p = at('targets', i);
    if (t.service_name !== undefined) {
      const first = names.get(t.service_name);
      if (first !== undefined) r.fail(at(p, 'service_name'), `target "${t.service_name}" is already defined by targets[${first}]`);
      else names.set(t.service_name, i);
    }
    if (t.service_type === 'hostfs') {
      if (hostfs !== undefined) r.fail(at(p, 'service_type'), `only one hostfs target is allowed (already targets[${hostfs}])`);
      else hostfs = i;
      if (t.service_name !== undefined && t.service_name !== HOSTFS_NAME) r.fail(at(p, 'service_name'), `a hostfs target must be named "${HOSTFS_NAME}", not "${t.service_name}"`);
    } else if (t.service_name === HOSTFS_NAME) {
      r.fail(at(p, 'service_type'), `the target named "${HOSTFS_NAME}" must have service_type hostfs, not ${t.service_type}`);
    }
    (t.network?.ports ?? []).forEach((pm, j) => {
      const owner = ports.get(pm.host);
      const self = t.service_name ?? p;
      if (owner !== undefined && owner !== self) {
        r.fail(at(at(at(at(p, 'network'), 'ports'), j), 'host'), `port ${pm.host} is already forwarded to target "${owner}"`);
      }
      ports.set(pm.host, self);
    });
    if (updateType === 'complete') {
      (t.storage ?? []).forEach((s, j) => {
        if (!labels.has(s.label)) {
          r.fail(at(at(at(p, 'storage'), j), 'label'), `storage label "${s.label}" is not declared in the top-level storage list`);
        }
      });
    }
  });
}
