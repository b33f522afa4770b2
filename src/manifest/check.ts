import { isMosError, MosError } from '../base/index.js';
import { checkImportFile } from './import-file.js';
import { checkInstallFile } from './install-file.js';
import { parseSysManifest } from './sys-manifest.js';

/** Which format a manifest file turned out to be. */
export type ManifestKind = 'manifest.yaml' | 'install.json' | 'manifest.json';

/** The outcome of checking any manifest file. */
export interface ManifestCheck {
  readonly kind: ManifestKind;
  readonly problems: readonly MosError[];
}

/**
 * Checks a file of any of the three formats, chosen by content: a JSON object with `uidmaps` is a
 * system manifest.json, any other JSON object an install.json, everything else manifest.yaml (YAML
 * being a superset of JSON, a YAML flow mapping that is not strict JSON stays YAML). Pure.
 */
export function checkManifestFile(raw: Uint8Array, file: string): ManifestCheck {
  const kind = sniff(raw);
  if (kind === 'manifest.yaml') return { kind, problems: checkImportFile(raw, file).problems };
  if (kind === 'install.json') return { kind, problems: checkInstallFile(raw, file).problems };
  try {
    parseSysManifest(raw, file);
    return { kind, problems: [] };
  } catch (e) {
    if (isMosError(e)) return { kind, problems: [e] };
    throw e;
  }
}

function sniff(raw: Uint8Array): ManifestKind {
  let i = 0;
  while (i < raw.length && (raw[i] === 0x20 || raw[i] === 0x0a || raw[i] === 0x0d || raw[i] === 0x09)) i++;
  if (raw[i] !== 0x7b /* { */ || raw.byteLength > 4 * 1024 * 1024) return 'manifest.yaml';
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    return 'manifest.yaml';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'manifest.yaml';
  return Object.prototype.hasOwnProperty.call(doc, 'uidmaps') ? 'manifest.json' : 'install.json';
}
