import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MosError } from '../base/index.js';
import { readFileLimited } from '../host/index.js';

/** A kernel module file is at most a few MiB; 64 MiB refuses a device or FIFO in the module tree. */
const MAX_MODULE_BYTES = 64 * 1024 * 1024;

/** A kernel module chosen for an initramfs, in load order (dependencies first). */
export interface ResolvedModule {
  /** Module name as the kernel knows it (`dm_verity`). */
  readonly name: string;
  /** Path below `lib/modules/<kver>/` (`kernel/drivers/md/dm-verity.ko`), always uncompressed. */
  readonly rel: string;
  /** The module's bytes (decompressed when the tree ships `.ko.xz`/`.ko.zst`). */
  readonly data: Buffer;
}

/** What {@link resolveModules} found. */
export interface ModuleSet {
  readonly kver: string;
  readonly modules: readonly ResolvedModule[];
  /** Requested names the kernel has built in (nothing to load). */
  readonly builtin: readonly string[];
}

const norm = (n: string) => n.replace(/-/g, '_');
const MODULE_FILE = /\.ko(\.xz|\.zst|\.gz)?$/;

/**
 * Resolves `names` (as modprobe takes them: `dm-verity`, `virtio_blk`) against a kernel's module tree
 * `<modRoot>/lib/modules/<kver>` with every dependency, in an order insmod can load them. Dependencies
 * come from each module's own `.modinfo` (`depends=`, and `softdep=pre:`), so the tree needs no depmod
 * run; a soft dependency naming an alias (crc32c) is resolved through `modules.alias` where depmod made one. A name that is neither a module file nor built in: INPUT_INVALID.
 */
export async function resolveModules(modRoot: string, kver: string, names: readonly string[]): Promise<ModuleSet> {
  const base = join(modRoot, 'lib', 'modules', kver);
  let files: string[];
  try {
    files = (await readdir(join(base, 'kernel'), { recursive: true })).filter((f) => MODULE_FILE.test(f)).map((f) => join('kernel', f));
  } catch (e) {
    throw new MosError({ code: 'INPUT_INVALID', subject: base, message: `not a kernel module tree: ${(e as Error).message}`, hint: 'pass --modules DIR where DIR/lib/modules/<kver>/kernel exists (e.g. an extracted linux-image .deb)' });
  }
  const byName = new Map(files.map((f) => [norm(f.split('/').pop()!.replace(MODULE_FILE, '')), f]));
  const builtinFile = await optionalText(join(base, 'modules.builtin'));
  const builtins = new Set(builtinFile.split('\n').filter(Boolean).map((l) => norm(l.split('/').pop()!.replace(MODULE_FILE, ''))));

  // Aliases (crc32c -> crc32c_intel, crc32c_generic) from depmod's modules.alias when the tree has one:
  // soft dependencies often name an alias rather than a module.
  const aliases = new Map<string, string[]>();
  for (const line of (await optionalText(join(base, 'modules.alias'))).split('\n')) {
    const m = /^alias (\S+) (\S+)$/.exec(line);
    if (m && !m[1]!.includes('*')) aliases.set(norm(m[1]!), [...(aliases.get(norm(m[1]!)) ?? []), norm(m[2]!)]);
  }
  const out: ResolvedModule[] = [];
  const done = new Set<string>();
  const active: string[] = [];
  const builtin: string[] = [];
  const visit = async (name: string, hard: boolean): Promise<void> => {
    const n = norm(name);
    if (done.has(n) || builtins.has(n)) return;
    if (active.includes(n)) throw new MosError({ code: 'INPUT_INVALID', subject: base, message: `module dependency cycle: ${[...active, n].join(' -> ')}` });
    const file = byName.get(n);
    if (file === undefined && aliases.has(n)) {
      for (const a of aliases.get(n)!) await visit(a, hard);
      return;
    }
    if (file === undefined) {
      if (!hard) return; // a soft dependency this kernel does not ship: optional by definition
      throw new MosError({ code: 'INPUT_INVALID', subject: `module ${name}`, message: `kernel ${kver} has no such module and does not build it in`, hint: `look under ${base}/kernel` });
    }
    active.push(n);
    const data = await moduleBytes(join(base, file));
    const info = modinfo(data, file);
    for (const d of info.softPre) await visit(d, false);
    for (const d of info.depends) await visit(d, true);
    active.pop();
    done.add(n);
    out.push({ name: n, rel: file.replace(/\.(xz|zst|gz)$/, ''), data });
  };
  for (const name of names) {
    if (builtins.has(norm(name))) builtin.push(name);
    else await visit(name, true);
  }
  return { kver, modules: out, builtin };
}

/** A depmod index (absent means empty); 64 MiB like a module, a device or FIFO is refused. */
async function optionalText(path: string): Promise<string> {
  try {
    return (await readFileLimited(path, MAX_MODULE_BYTES)).toString('utf8');
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') return '';
    throw e;
  }
}

async function moduleBytes(path: string): Promise<Buffer> {
  const raw = await readFileLimited(path, MAX_MODULE_BYTES);
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
  if (tool === undefined) return raw;
  if (tool === 'gzip') return gunzipSync(raw);
  // busybox insmod loads only plain ELF: decompress at build time.
  return new Promise((resolve, reject) => {
    execFile(tool, ['-dc', path], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(new MosError({ code: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'HOST_TOOL_MISSING' : 'HOST_EXEC_FAILED', subject: path, message: `cannot decompress with ${tool}: ${err.message}` }));
      else resolve(stdout);
    });
  });
}

/** `depends=` and `softdep=pre:` of a module's `.modinfo` ELF section. */
export function modinfo(elf: Buffer, subject: string): { depends: string[]; softPre: string[] } {
  const section = elfSection(elf, '.modinfo', subject);
  const depends: string[] = [];
  const softPre: string[] = [];
  for (const kv of section.toString('latin1').split('\0')) {
    if (kv.startsWith('depends=')) depends.push(...kv.slice(8).split(',').filter(Boolean));
    else if (kv.startsWith('softdep=')) {
      // "pre: a b post: c"
      const m = /pre:\s*([^:]*?)(?:\s+post:|$)/.exec(kv.slice(8));
      if (m) softPre.push(...m[1]!.trim().split(/\s+/).filter(Boolean));
    }
  }
  return { depends, softPre };
}

function elfSection(b: Buffer, want: string, subject: string): Buffer {
  const bad = (why: string) => new MosError({ code: 'INPUT_INVALID', subject, message: `not a loadable kernel module: ${why}` });
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw bad('no ELF header');
  if (b[4] !== 2 || b[5] !== 1) throw bad('not a 64-bit little-endian ELF');
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  if (shentsize < 64 || shoff + shnum * shentsize > b.length || shstrndx >= shnum) throw bad('section headers out of range');
  const sh = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: b.readUInt32LE(o), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)) };
  };
  const strtab = sh(shstrndx);
  if (strtab.offset + strtab.size > b.length) throw bad('section names out of range');
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    const end = b.indexOf(0, strtab.offset + s.name);
    if (b.toString('latin1', strtab.offset + s.name, end) === want) {
      if (s.offset + s.size > b.length) throw bad(`${want} out of range`);
      return b.subarray(s.offset, s.offset + s.size);
    }
  }
  return Buffer.alloc(0);
}
