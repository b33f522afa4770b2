// Go encoding/json output, byte for byte, for the values mos marshals (Go 1.21: mos's toolchain).

/** A JSON string as Go's json.Marshal writes it: HTML-safe and U+2028/2029 escaped. */
export function goString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    // Go 1.21 writes \b and \f as \u0008 / \u000c, and escapes <, > and & for embedding in HTML.
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      out += s[i]! + s[i + 1]!;
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd'; // a lone surrogate is invalid UTF-8 in Go: U+FFFD
    else out += s[i]!;
  }
  return out + '"';
}

/** A JSON value in Go's compact form: keys in the given (struct) order, `null` for absent slices/maps. */
export type GoValue = string | number | boolean | null | readonly GoValue[] | GoObject;

/** An object whose keys are written in insertion order (Go struct field order). */
export interface GoObject {
  readonly [key: string]: GoValue;
}

/** Compact Go json.Marshal of `v` (integers only: mos has no float fields). */
export function goMarshal(v: GoValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return goString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`not an integer: ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${(v as readonly GoValue[]).map(goMarshal).join(',')}]`;
  const o = v as GoObject;
  return `{${Object.keys(o).map((k) => `${goString(k)}:${goMarshal(o[k]!)}`).join(',')}}`;
}
