/** Plain-text rendering shared by the commands (no colours: output is often piped or logged). */

/** An ISO time without milliseconds, space-separated. */
export function when(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** `sha256:` plus 12 hex digits. */
export function short(digest: string): string {
  return digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, '$1');
}

/** A left-aligned text table; cells come from repositories and manifests, so control characters go. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const clean = rows.map((r) => r.map((c) => c.replace(/[\0-\x1f\x7f]/g, ' ')));
  const widths = head.map((h, i) => Math.max(h.length, ...clean.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...clean.map(line)].join('\n');
}

/** MiB with one decimal. */
export function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/**
 * Bytes as a person reads them: binary units, one decimal at most ("90.1 MiB"). Plain arithmetic, not
 * Intl (pretty-bytes formats its fraction digits with toLocaleString): the first Intl call of a process
 * loads ICU, ~20 ms here and ~650 ms in a TCG guest, on every `mosctl status` and progress line.
 */
export function human(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  let n = Math.abs(bytes);
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  // One decimal, truncated (not rounded) from the shortest decimal form, as pretty-bytes did: 1048575
  // bytes stay "1023.9 KiB" rather than becoming "1024 KiB".
  const [whole, fraction = ''] = String(n).split('.');
  const digit = fraction.slice(0, 1);
  return `${bytes < 0 ? '-' : ''}${digit && digit !== '0' ? `${whole}.${digit}` : whole} ${UNITS[unit]}`;
}
