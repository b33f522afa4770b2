/**
 * Target version ordering for the downgrade check of `mosctl update`.
 * Rule (README "Versions"): when both strings parse as semver 2.0 (an optional leading `v` allowed), they
 * compare by semver precedence (pre-releases before the release, build metadata ignored); otherwise they
 * compare in natural order: runs of digits numerically, everything else character by character.
 * Semver parts above 2^53 - 1 are not semver to the `semver` package either, so such versions compare
 * in natural order.
 */
import { compare, parse, type SemVer } from 'semver';

// Strict semver 2.0 parsing (a leading `v` allowed, nothing else loose), from the package npm uses.
function parseSemver(v: string): SemVer | undefined {
  // semver trims surrounding whitespace; a version with any is not semver here.
  if (v.trim() !== v) return undefined;
  return parse(v) ?? undefined;
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Natural order: "1.10" > "1.9", "build-20" > "build-3"; digit runs compare numerically. */
export function compareNatural(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.max(ta.length, tb.length); i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const c = cmpBig(BigInt(x), BigInt(y));
      if (c !== 0) return c;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/** Orders two target versions: negative when `a` is older than `b`, 0 when equal, positive when newer. */
export function compareVersions(a: string, b: string): number {
  const sa = parseSemver(a);
  const sb = parseSemver(b);
  if (sa && sb) return compare(sa, sb); // build metadata ignored (semver §10)
  return compareNatural(a, b);
}
