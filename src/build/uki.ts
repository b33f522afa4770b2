// A Unified Kernel Image: systemd's EFI stub with the kernel, the initramfs, the command line and an
// os-release joined as PE sections (what ukify does; Debian bookworm's systemd 252 has no ukify, so
// binutils' objcopy places them, the way systemd's own documentation did before ukify). Reproducible:
// the PE timestamp objcopy stamps is set to the given epoch and the checksum recomputed. Optionally
// signed for Secure Boot with sbsign (a `db` key and certificate).
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MosError, sha256Hex } from '../base/index.js';
import { exec, exists, writeFileAtomic } from '../host/index.js';

/** Debian's systemd-boot-efi stub. */
export const DEFAULT_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';

export interface BuildUkiOptions {
  /** The kernel (bzImage with its EFI stub: Debian's /boot/vmlinuz-*). */
  readonly kernel: string;
  /** The initramfs (`mosb initrd build`), carrying the manifest CA. */
  readonly initrd: string;
  /** The kernel command line baked into the image. */
  readonly cmdline: string;
  readonly out: string;
  readonly stub?: string;
  /** The `.osrel` section (os-release text); default names mosctl. */
  readonly osRelease?: string;
  /** Sign with sbsign: PEM private key and certificate (the Secure Boot `db` pair). */
  readonly sign?: { readonly key: string; readonly cert: string };
  /** PE timestamp, seconds since the epoch (default SOURCE_DATE_EPOCH, else 0). */
  readonly epoch?: number;
}

export interface BuildUkiResult {
  readonly out: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly signed: boolean;
  /** Section name -> [virtual address, size], as placed. */
  readonly sections: Readonly<Record<string, readonly [number, number]>>;
}

const OS_RELEASE = 'ID=mosctl\nNAME="mosctl UKI"\nPRETTY_NAME="mosctl unified kernel image"\n';
const MAX_CMDLINE = 4096;

interface PeLayout {
  readonly imageBase: bigint;
  readonly sectionAlignment: number;
  /** End of the last section's virtual range. */
  readonly end: number;
  readonly sections: readonly string[];
}

const badPe = (file: string, message: string) => new MosError({ code: 'INPUT_INVALID', subject: file, message: `is not a usable EFI stub: ${message}` });

/** The PE32+ header fields the section placement needs. */
export function readPeLayout(buf: Buffer, file: string): PeLayout {
  if (buf.length < 0x40 || buf.readUInt16LE(0) !== 0x5a4d) throw badPe(file, 'no MZ header');
  const pe = buf.readUInt32LE(0x3c);
  if (pe + 24 > buf.length || buf.readUInt32LE(pe) !== 0x00004550) throw badPe(file, 'no PE signature');
  const nsect = buf.readUInt16LE(pe + 6);
  const optSize = buf.readUInt16LE(pe + 20);
  const opt = pe + 24;
  if (opt + optSize > buf.length || optSize < 112) throw badPe(file, 'optional header truncated');
  if (buf.readUInt16LE(opt) !== 0x20b) throw badPe(file, 'not PE32+ (64-bit)');
  const imageBase = buf.readBigUInt64LE(opt + 24);
  const sectionAlignment = buf.readUInt32LE(opt + 32);
  const table = opt + optSize;
  if (table + nsect * 40 > buf.length) throw badPe(file, 'section table truncated');
  let end = 0;
  const sections: string[] = [];
  for (let i = 0; i < nsect; i++) {
    const s = table + i * 40;
    sections.push(buf.subarray(s, s + 8).toString('latin1').replace(/\0+$/, ''));
    end = Math.max(end, buf.readUInt32LE(s + 12) + Math.max(buf.readUInt32LE(s + 8), buf.readUInt32LE(s + 16)));
  }
  return { imageBase, sectionAlignment: sectionAlignment || 4096, end, sections };
}

/** Sets the COFF TimeDateStamp and recomputes the optional header's CheckSum (the PE algorithm). */
export function normalisePe(buf: Buffer, epoch: number): void {
  const pe = buf.readUInt32LE(0x3c);
  buf.writeUInt32LE(epoch >>> 0, pe + 8);
  const sumAt = pe + 24 + 64;
  buf.writeUInt32LE(0, sumAt);
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) {
    sum += buf.readUInt16LE(i);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (buf.length % 2 === 1) {
    sum += buf[buf.length - 1]!;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  buf.writeUInt32LE((sum + buf.length) >>> 0, sumAt);
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Builds a UKI at `out` (written whole or not at all). Inputs are checked first: a missing kernel,
 * initrd or stub, an empty or multi-line command line, or a missing signing file is one error and
 * nothing is written.
 */
export async function buildUki(opts: BuildUkiOptions): Promise<BuildUkiResult> {
  const stub = opts.stub ?? DEFAULT_STUB;
  for (const [what, file] of [['kernel', opts.kernel], ['initrd', opts.initrd], ['EFI stub', stub], ...(opts.sign ? [['signing key', opts.sign.key], ['signing certificate', opts.sign.cert]] : [])] as const) {
    if (!(await exists(file))) {
      throw new MosError({
        code: 'NOT_FOUND',
        subject: `${what} ${file}`,
        message: 'does not exist',
        ...(what === 'EFI stub' ? { hint: 'apt-get install systemd-boot-efi, or give --stub' } : {}),
      });
    }
  }
  const cmdline = opts.cmdline.trim();
  if (cmdline === '' || /[\n\r\0]/.test(cmdline) || cmdline.length > MAX_CMDLINE) {
    throw new MosError({ code: 'INPUT_INVALID', subject: 'command line', message: cmdline === '' ? 'is empty' : cmdline.length > MAX_CMDLINE ? `is longer than ${MAX_CMDLINE} bytes` : 'has a newline or NUL in it' });
  }
  const kernelHead = await readHead(opts.kernel, 0x40);
  if (kernelHead.readUInt16LE(0) !== 0x5a4d) throw new MosError({ code: 'INPUT_INVALID', subject: `kernel ${opts.kernel}`, message: 'is not an EFI-stub kernel (no MZ header)', hint: 'use the bzImage (/boot/vmlinuz-*), not vmlinux' });
  const layout = readPeLayout(await readFile(stub), stub);
  for (const s of ['.osrel', '.cmdline', '.linux', '.initrd']) {
    if (layout.sections.includes(s)) throw badPe(stub, `it already has a ${s} section (is it a UKI already?)`);
  }

  const work = await mkdtemp(join(tmpdir(), 'mosb-uki-'));
  try {
    const files: [string, string][] = [
      ['.osrel', join(work, 'osrel')],
      ['.cmdline', join(work, 'cmdline')],
      ['.linux', opts.kernel],
      ['.initrd', opts.initrd],
    ];
    await writeFile(join(work, 'osrel'), opts.osRelease ?? OS_RELEASE);
    await writeFile(join(work, 'cmdline'), cmdline);
    const placed: Record<string, [number, number]> = {};
    const args: string[] = [];
    let at = align(layout.end, layout.sectionAlignment);
    for (const [name, file] of files) {
      const size = (await stat(file)).size;
      placed[name] = [at, size];
      args.push('--add-section', `${name}=${file}`, '--change-section-vma', `${name}=0x${(layout.imageBase + BigInt(at)).toString(16)}`);
      at = align(at + size, layout.sectionAlignment);
    }
    const unsigned = join(work, 'uki.efi');
    await exec(['objcopy', ...args, stub, unsigned]);
    const buf = await readFile(unsigned);
    normalisePe(buf, opts.epoch ?? epochDefault());
    let bytes = buf;
    if (opts.sign) {
      await writeFile(unsigned, buf);
      const signed = join(work, 'uki.signed.efi');
      await exec(['sbsign', '--key', opts.sign.key, '--cert', opts.sign.cert, '--output', signed, unsigned]);
      bytes = await readFile(signed);
    }
    await writeFileAtomic(opts.out, bytes, { mode: 0o644 });
    return { out: opts.out, bytes: bytes.length, sha256: sha256Hex(bytes), signed: opts.sign !== undefined, sections: placed };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function epochDefault(): number {
  const e = process.env['SOURCE_DATE_EPOCH'];
  return e !== undefined && /^\d+$/.test(e) ? Number(e) : 0;
}

async function readHead(file: string, n: number): Promise<Buffer> {
  const fh = await open(file);
  try {
    const b = Buffer.alloc(n);
    await fh.read(b, 0, n, 0);
    return b;
  } finally {
    await fh.close();
  }
}
