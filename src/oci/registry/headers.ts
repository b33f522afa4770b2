/** Pure parsers for the HTTP headers the registry protocol uses (RFC 9110 auth challenges, RFC 8288 Link). */

/** One `WWW-Authenticate` challenge: scheme lowercased, parameter names lowercased. */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Parses a `WWW-Authenticate` value holding one or several challenges (RFC 9110 §11.6.1), e.g.
 * `Bearer realm="https://a/token",service="s",scope="repository:x:pull,push", Basic realm="r"`.
 * Quoted strings may contain commas and escaped quotes. Malformed tails are ignored, never thrown.
 */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let s = header ?? '';
  const skip = (re: RegExp) => {
    const m = re.exec(s);
    if (m) s = s.slice(m[0].length);
  };
  while (s.length > 0) {
    skip(/^[\s,]+/);
    const scheme = TOKEN.exec(s);
    if (!scheme) break;
    s = s.slice(scheme[0].length);
    const current = { scheme: scheme[0].toLowerCase(), params: {} as Record<string, string> };
    out.push(current);
    for (;;) {
      skip(/^[\s,]*/);
      const name = TOKEN.exec(s);
      if (!name) break;
      const after = s.slice(name[0].length);
      const eq = /^\s*=\s*/.exec(after);
      if (!eq) break; // a bare token starts the next challenge (or is a token68 we do not use)
      let rest = after.slice(eq[0].length);
      let value: string;
      if (rest.startsWith('"')) {
        let i = 1;
        value = '';
        while (i < rest.length && rest[i] !== '"') {
          if (rest[i] === '\\' && i + 1 < rest.length) i++;
          value += rest[i];
          i++;
        }
        rest = rest.slice(i + 1);
      } else {
        const v = /^[^\s,]*/.exec(rest)![0];
        value = v;
        rest = rest.slice(v.length);
      }
      current.params[name[0].toLowerCase()] = value;
      s = rest;
    }
  }
  return out;
}

/** The `rel="next"` target of a `Link` header (RFC 8288), or undefined. */
export function nextLink(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  for (const m of header.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]+)*)/g)) {
    const params = m[2] ?? '';
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(params)) return m[1];
  }
  return undefined;
}

/** Milliseconds to wait from a `Retry-After` value (seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (!header) return undefined;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** The media type of a `Content-Type` value without parameters, lowercased. */
export function mediaTypeOf(contentType: string | null | undefined): string | undefined {
  if (!contentType) return undefined;
  return contentType.split(';')[0]!.trim().toLowerCase() || undefined;
}
