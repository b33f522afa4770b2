import { FAILSAFE_SCHEMA, load, YAMLException } from 'js-yaml';
import { MAX_MANIFEST_BYTES, MAX_YAML_ALIASES } from './constants.js';
import type { FieldReader } from './reader.js';

/** Decodes input bytes as UTF-8 under the size bound; undefined (reported) when too large or not UTF-8. */
export function decodeText(r: FieldReader, input: string | Uint8Array): string | undefined {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > MAX_MANIFEST_BYTES) {
    r.fail('', `is ${size} bytes, more than the ${MAX_MANIFEST_BYTES} a manifest may have`, undefined, 'MANIFEST_TOO_LARGE');
    return undefined;
  }
  if (typeof input === 'string') return input;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    r.fail('', 'is not valid UTF-8 text');
    return undefined;
  }
}

/**
 * Parses one YAML document with the failsafe schema (all scalars strings: Go's yaml keeps `1.0` as
 * "1.0" in a string field), duplicate keys refused and aliases bounded (no alias bombs).
 */
export function loadYaml(r: FieldReader, text: string): unknown {
  try {
    return load(text, { schema: FAILSAFE_SCHEMA, maxAliases: MAX_YAML_ALIASES, filename: r.file });
  } catch (e) {
    if (e instanceof YAMLException) {
      const where = e.mark ? ` (line ${e.mark.line + 1}, column ${e.mark.column + 1})` : '';
      r.fail('', `is not valid YAML: ${e.reason}${where}`);
      return undefined;
    }
    // js-yaml documents that anything may be thrown on hostile input (e.g. a RangeError on deep nesting).
    r.fail('', `is not valid YAML: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/** JSON.parse under the reader; undefined (reported) when not JSON. */
export function loadJson(r: FieldReader, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    r.fail('', `is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}
