import { MosError } from '../base/index.js';
import { SHA256_DIGEST_RE } from './constants.js';
import type { ImportFile, InstallFile, InstallTarget } from './types.js';

/** What a source resolved to: the image manifest's digest and byte size. */
export interface Pin {
  readonly digest: string;
  readonly size: number;
}

/**
 * Builds the install.json value `mosb manifest publish` signs: `source` dropped, each target pinned to
 * its resolved digest and size (`pins` by target name). A pin that contradicts a digest or size written
 * in the YAML fails (OCI_DIGEST_MISMATCH / OCI_SIZE_MISMATCH naming the target). Pure.
 */
export function installFileFromImport(imp: ImportFile, pins: ReadonlyMap<string, Pin>): InstallFile {
  const targets = imp.targets.map((t, i): InstallTarget => {
    const field = (f: string) => `targets[${i}].${f}`;
    const pin = pins.get(t.service_name);
    if (pin === undefined) {
      throw new MosError({ code: 'MANIFEST_INVALID', subject: field('source'), message: `target "${t.service_name}" was not resolved to a digest`, hint: 'resolve every source before publishing' });
    }
    if (!SHA256_DIGEST_RE.test(pin.digest)) {
      throw new MosError({ code: 'MANIFEST_INVALID', subject: field('digest'), message: `target "${t.service_name}" resolved to ${JSON.stringify(pin.digest)}, not a sha256 digest` });
    }
    if (!Number.isSafeInteger(pin.size) || pin.size <= 0) {
      throw new MosError({ code: 'MANIFEST_INVALID', subject: field('size'), message: `target "${t.service_name}" resolved to size ${pin.size}, not a positive integer` });
    }
    if (t.digest !== undefined && t.digest !== pin.digest) {
      throw new MosError({
        code: 'OCI_DIGEST_MISMATCH',
        subject: field('digest'),
        message: `target "${t.service_name}": the manifest says ${t.digest} but ${t.source} is ${pin.digest}`,
        hint: 'fix the digest in the manifest, or the image the source names',
      });
    }
    if (t.size !== undefined && t.size !== pin.size) {
      throw new MosError({
        code: 'OCI_SIZE_MISMATCH',
        subject: field('size'),
        message: `target "${t.service_name}": the manifest says ${t.size} bytes but ${t.source} is ${pin.size}`,
        hint: 'fix the size in the manifest, or the image the source names',
      });
    }
    return {
      service_name: t.service_name,
      version: t.version,
      service_type: t.service_type,
      network: t.network,
      nsgroup: t.nsgroup,
      digest: pin.digest,
      storage: t.storage,
      size: pin.size,
    };
  });
  return { version: imp.version, product: imp.product, storage: imp.storage, targets, update_type: imp.update_type };
}
