import { MosError, type ErrorCode } from '../base/index.js';
import { MAX_PEM_BYTES } from './constants.js';

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, ...) and decoded DER. */
export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

/** Decodes a PEM file (text or bytes) into DER blocks; malformed framing, base64 or size throw `code` naming `subject`. */
export function decodePem(pem: string | Uint8Array, subject: string, code: ErrorCode = 'TRUST_PEM_INVALID'): PemBlock[] {
  const size = typeof pem === 'string' ? Buffer.byteLength(pem) : pem.byteLength;
  const fail = (message: string): MosError =>
    new MosError({ code, subject, message, hint: 'give a PEM file with "-----BEGIN CERTIFICATE-----" blocks' });
  // Hostile or mistaken input (a disk image passed as --capath) must not be scanned whole.
  if (size > MAX_PEM_BYTES) throw fail(`PEM is ${size} bytes, more than the ${MAX_PEM_BYTES} allowed`);
  if (size === 0) throw fail('PEM file is empty');
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('latin1');
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const [, begin, body, end] = m as unknown as [string, string, string, string];
    if (begin !== end) throw fail(`PEM block "BEGIN ${begin}" ends with "END ${end}"`);
    if (!BASE64_BODY.test(body)) throw fail(`PEM block ${blocks.length + 1} (${begin}) is not base64`);
    const der = Buffer.from(body.replace(/\s+/g, ''), 'base64');
    if (der.length === 0) throw fail(`PEM block ${blocks.length + 1} (${begin}) is empty`);
    blocks.push({ label: begin, der });
  }
  if (blocks.length === 0) throw fail('no PEM block found');
  return blocks;
}

/** The DER of every CERTIFICATE block of a PEM file; at least one, else `code`. */
export function decodeCertificates(pem: string | Uint8Array, subject: string, code: ErrorCode = 'TRUST_PEM_INVALID'): Buffer[] {
  const ders = decodePem(pem, subject, code)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.der);
  if (ders.length === 0) {
    throw new MosError({ code, subject, message: 'no CERTIFICATE block found', hint: 'give a PEM file with "-----BEGIN CERTIFICATE-----" blocks' });
  }
  return ders;
}

/** PEM text of one DER certificate (64-column base64, as openssl writes it). */
export function certificateToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}
