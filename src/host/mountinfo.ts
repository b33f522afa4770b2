import { readFile } from 'node:fs/promises';
import { MosError, describeSystemError } from '../base/index.js';

/** One line of /proc/<pid>/mountinfo (proc(5)), with octal escapes decoded. */
export interface MountInfoEntry {
  readonly id: number;
  readonly parentId: number;
  /** `major:minor` of the mounted device. */
  readonly device: string;
  readonly mountPoint: string;
  readonly mountOptions: string;
  readonly fsType: string;
  readonly source: string;
  readonly superOptions: string;
}

// The kernel escapes space, tab, newline and backslash in paths as \ooo.
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo text (pure); malformed lines are skipped rather than trusted. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2]!,
      mountPoint: unescapeOctal(f[4]!),
      mountOptions: f[5]!,
      fsType: f[sep + 1]!,
      source: unescapeOctal(f[sep + 2]!),
      superOptions: unescapeOctal(f.slice(sep + 3).join(' ')),
    });
  }
  return out;
}

/** Reads and parses this process's mount table. */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  try {
    return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  } catch (e) {
    throw new MosError({ code: 'HOST_IO', subject: '/proc/self/mountinfo', message: `cannot read: ${describeSystemError(e)}`, cause: e });
  }
}

/**
 * The value of `key=` in a comma-separated option string, honouring overlayfs's backslash escapes
 * (`\,` and `\:` inside paths); undefined when absent.
 */
export function mountOption(options: string, key: string): string | undefined {
  for (const opt of splitUnescaped(options, ',')) {
    if (opt.startsWith(`${key}=`)) return opt.slice(key.length + 1);
  }
  return undefined;
}

/** An overlay's lower directories, top first, as the kernel echoes them (data-only `::` lowers included). */
export function overlayLowerDirs(entry: MountInfoEntry): string[] {
  if (entry.fsType !== 'overlay') return [];
  const lower = mountOption(entry.superOptions, 'lowerdir');
  if (lower === undefined) return [];
  return splitUnescaped(lower, ':')
    .filter((p) => p !== '')
    .map((p) => p.replace(/\\(.)/g, '$1'));
}

/** The topmost mount at `path` (the one a lookup sees), or undefined. */
export function mountAt(entries: readonly MountInfoEntry[], path: string): MountInfoEntry | undefined {
  let found: MountInfoEntry | undefined;
  for (const e of entries) if (e.mountPoint === path) found = e;
  return found;
}

function splitUnescaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}
