import { isIP } from 'node:net';
import { MosError } from '../base/index.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Throws INPUT_INVALID unless `name` is a safe LXC container / interface-free name (no path parts). */
export function checkContainerName(name: string): void {
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new MosError({ code: 'INPUT_INVALID', subject: name, message: 'invalid container name', hint: 'use 1-64 letters, digits, "_", "." or "-", starting with a letter or digit' });
  }
}

/** Throws INPUT_INVALID unless `value` is a single config line without surrounding whitespace LXC would trim. */
export function checkConfigValue(value: string, subject: string): void {
  if (/[\n\r\0]/.test(value)) throw new MosError({ code: 'INPUT_INVALID', subject, message: 'contains a line break or NUL' });
  if (value !== value.trim()) throw new MosError({ code: 'INPUT_INVALID', subject, message: 'has leading or trailing whitespace, which LXC would drop' });
}

/** Throws INPUT_INVALID unless `path` is absolute, free of `..` and whitespace (mount entries are space-separated). */
export function checkPath(path: string, subject: string): void {
  if (!path.startsWith('/') || path.split('/').includes('..') || /[\s\0]/.test(path)) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `path ${JSON.stringify(path)} must be absolute, without ".." or whitespace` });
  }
}

/** A port number 1..65535 (mos allowed 65536). */
export function checkPort(port: number, subject: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `port ${String(port)} is not in 1..65535` });
  }
}

/** `addr[/prefix]` of the given family, normalised to CIDR (bare IPv4 gets /24, bare IPv6 /64). */
export function normaliseCidr(value: string, family: 4 | 6, subject: string): string {
  const [addr = '', prefix, extra] = value.split('/');
  const max = family === 4 ? 32 : 128;
  const p = prefix === undefined ? (family === 4 ? 24 : 64) : Number(prefix);
  if (isIP(addr) !== family || extra !== undefined || !Number.isInteger(p) || p < 1 || p > max || (prefix !== undefined && !/^\d+$/.test(prefix))) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `${JSON.stringify(value)} is not an IPv${family} address with an optional /prefix` });
  }
  return `${addr}/${p}`;
}

/** A bridge / interface name as the kernel accepts it (1-15 chars, no '/', whitespace or ':'). */
export function checkInterfaceName(name: string, subject: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: `${JSON.stringify(name)} is not a valid interface name` });
  }
}
