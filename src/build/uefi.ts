// A keyset's UEFI Secure Boot keys (mos's layout: `uefi-pk/`, `uefi-kek/`, `uefi-db/`, each
// `cert.pem`, `privkey.pem` and `guid`, the owner GUID of its signature list) and an OVMF variables
// file with them enrolled: what mos's bootkit build gets from `virt-fw-vars --secure-boot --no-microsoft
// --set-pk --add-kek --add-db` (bookworm has no virt-firmware, so the edk2 variable store is written
// here). The firmware then runs in user mode with Secure Boot on: it starts only EFI executables signed
// by the `db` key (sbsign; `mosb uki build --sign-key`).
import { X509Certificate, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MosError, describeSystemError } from '../base/index.js';
import { exists, readFileLimited, writeFileAtomic } from '../host/index.js';
import { MAX_PEM_BYTES, issueUefiCert } from '../trust/index.js';
import { keysetPaths, publishDir, validityFrom } from './keyset.js';

export const UEFI_KEYS = ['pk', 'kek', 'db'] as const;
export type UefiKeyName = (typeof UEFI_KEYS)[number];

/** Debian's (package ovmf) empty 4 MiB variables template, in setup mode. */
export const DEFAULT_OVMF_VARS_TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.fd';

const UEFI_VALIDITY_YEARS = 10;

export interface UefiKeyPaths {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly guid: string;
}

/** `<keys>/<keyset>/uefi-{pk,kek,db}/{cert.pem,privkey.pem,guid}` (no disk access). */
export function uefiKeyPaths(opts: { keyset: string; dataHome?: string }): Record<UefiKeyName, UefiKeyPaths> {
  const ks = keysetPaths(opts);
  const one = (k: UefiKeyName): UefiKeyPaths => {
    const dir = join(ks.dir, `uefi-${k}`);
    return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'privkey.pem'), guid: join(dir, 'guid') };
  };
  return { pk: one('pk'), kek: one('kek'), db: one('db') };
}

export interface CreateUefiKeysResult {
  readonly keys: Record<UefiKeyName, UefiKeyPaths>;
  /** Which of the three were made now (the others were there and are left alone). */
  readonly created: readonly UefiKeyName[];
}

/**
 * Makes the keyset's missing UEFI keys: a self-signed RSA-2048 certificate (`O=mosctl keyset K, CN=K
 * UEFI PK|KEK|db`, 10 years), its PKCS#8 key (mode 0600) and a random owner GUID. A key that is there is
 * never replaced. The keyset itself (its manifest CA) must exist.
 */
export async function createUefiKeys(opts: { keyset: string; dataHome?: string; now?: Date }): Promise<CreateUefiKeysResult> {
  const ks = keysetPaths(opts);
  if (!(await exists(ks.caCert))) {
    throw new MosError({ code: 'TRUST_KEYSET_UNKNOWN', subject: ks.dir, message: `keyset "${opts.keyset}" does not exist (no manifest CA)`, hint: `create it with: mosb keyset add ${opts.keyset}` });
  }
  const keys = uefiKeyPaths(opts);
  const now = opts.now ?? new Date();
  const created: UefiKeyName[] = [];
  for (const k of UEFI_KEYS) {
    const p = keys[k];
    if (await exists(p.dir)) continue;
    const built = await issueUefiCert({
      name: `O=mosctl keyset ${opts.keyset}, CN=${opts.keyset} UEFI ${k === 'db' ? 'db' : k.toUpperCase()}`,
      ...validityFrom(now, UEFI_VALIDITY_YEARS),
      codeSigning: k === 'db',
    });
    await publishDir(p.dir, `UEFI ${k} key`, async (tmp) => {
      await writeFileAtomic(join(tmp, 'cert.pem'), built.certPem, { mode: 0o644 });
      await writeFileAtomic(join(tmp, 'privkey.pem'), built.keyPem, { mode: 0o600 });
      await writeFileAtomic(join(tmp, 'guid'), `${randomUUID()}\n`, { mode: 0o644 });
    });
    created.push(k);
  }
  return { keys, created };
}

// ---- EFI signature lists (UEFI 2.x, 32.4.1) ----------------------------------------------------------

/** EFI_CERT_X509_GUID. */
export const EFI_CERT_X509_GUID = 'a5c059a1-94e4-4aa7-87b5-ab155c2bf072';
/** EFI_GLOBAL_VARIABLE (PK, KEK, SecureBoot, SetupMode). */
export const EFI_GLOBAL_VARIABLE = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
/** EFI_IMAGE_SECURITY_DATABASE_GUID (db, dbx). */
export const EFI_IMAGE_SECURITY_DATABASE = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
/** edk2's SecureBootEnable (gEfiSecureBootEnableDisableGuid) and CustomMode (gEfiCustomModeEnableGuid). */
const SECURE_BOOT_ENABLE_GUID = 'f0a30bc7-af08-4556-99c4-001009c93a44';
const CUSTOM_MODE_GUID = 'c076ec0c-7028-4399-a072-71ee5c448b9f';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A GUID in its EFI byte order (the first three fields little-endian). */
export function guidBytes(guid: string): Buffer {
  if (!GUID_RE.test(guid)) throw new MosError({ code: 'INPUT_INVALID', subject: `GUID "${guid}"`, message: 'is not a GUID (8-4-4-4-12 hex digits)' });
  const h = Buffer.from(guid.replace(/-/g, ''), 'hex');
  return Buffer.concat([Buffer.from(h.subarray(0, 4)).reverse(), Buffer.from(h.subarray(4, 6)).reverse(), Buffer.from(h.subarray(6, 8)).reverse(), h.subarray(8)]);
}

export function guidString(b: Uint8Array): string {
  const x = Buffer.from(b);
  const h = Buffer.concat([Buffer.from(x.subarray(0, 4)).reverse(), Buffer.from(x.subarray(4, 6)).reverse(), Buffer.from(x.subarray(6, 8)).reverse(), x.subarray(8, 16)]).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * One EFI_SIGNATURE_LIST of type X.509 holding one certificate (what efitools' `cert-to-efi-sig-list -g
 * OWNER cert.pem` writes): type GUID, list size, header size 0, signature size, then owner GUID + DER.
 */
export function x509SignatureList(certDer: Uint8Array, owner: string): Buffer {
  const head = Buffer.alloc(28);
  guidBytes(EFI_CERT_X509_GUID).copy(head, 0);
  head.writeUInt32LE(28 + 16 + certDer.length, 16);
  head.writeUInt32LE(0, 20);
  head.writeUInt32LE(16 + certDer.length, 24);
  return Buffer.concat([head, guidBytes(owner), certDer]);
}

// ---- edk2's authenticated variable store (OVMF_VARS*.fd) ---------------------------------------------

const FV_NV_DATA_GUID = 'fff12b8d-7696-4c8b-a985-2747075b4f50';
const AUTH_VARIABLE_STORE_GUID = 'aaf32c78-947b-439a-a180-2e144ec37792';
const START_ID = 0x55aa;
const VAR_ADDED = 0x3f;
const VAR_DELETED = 0xfd;
/** AUTHENTICATED_VARIABLE_HEADER, packed: StartId, State, Reserved, Attributes, MonotonicCount, TimeStamp, PubKeyIndex, NameSize, DataSize, VendorGuid. */
const VAR_HEADER = 60;
const STORE_HEADER = 28;

export const ATTR_NV = 0x1;
export const ATTR_BS = 0x2;
export const ATTR_RT = 0x4;
export const ATTR_TIME_AUTH = 0x20;

export interface StoredVariable {
  readonly offset: number;
  readonly name: string;
  readonly guid: string;
  readonly attributes: number;
  /** VAR_ADDED (0x3f) for a live one. */
  readonly state: number;
  readonly data: Buffer;
}

const badStore = (file: string, message: string) => new MosError({ code: 'INPUT_INVALID', subject: file, message: `is not an OVMF variables file: ${message}` });

/** The variable store of an edk2 NV firmware volume (header checks) and its variables in order, deleted ones included. */
export function readVarStore(buf: Buffer, file = 'variables file'): { storeStart: number; storeEnd: number; freeAt: number; variables: StoredVariable[] } {
  if (buf.length < 0x48 + STORE_HEADER || buf.readUInt32LE(0x28) !== 0x4856465f) throw badStore(file, 'no firmware volume header (_FVH)');
  if (guidString(buf.subarray(0x10, 0x20)) !== FV_NV_DATA_GUID) throw badStore(file, 'the firmware volume is not an NV data volume');
  const hlen = buf.readUInt16LE(0x30);
  const fvLength = Number(buf.readBigUInt64LE(0x20));
  if (fvLength > buf.length || hlen < 0x48 || hlen + STORE_HEADER > fvLength) throw badStore(file, 'firmware volume sizes do not fit the file');
  if (guidString(buf.subarray(hlen, hlen + 16)) !== AUTH_VARIABLE_STORE_GUID) throw badStore(file, 'the variable store is not an authenticated one');
  const size = buf.readUInt32LE(hlen + 16);
  if (buf[hlen + 20] !== 0x5a || buf[hlen + 21] !== 0xfe) throw badStore(file, 'the variable store is not formatted and healthy');
  const storeStart = hlen;
  const storeEnd = hlen + size;
  if (storeEnd > fvLength) throw badStore(file, 'the variable store is larger than its volume');
  const variables: StoredVariable[] = [];
  let at = align4(hlen + STORE_HEADER);
  while (at + VAR_HEADER <= storeEnd && buf.readUInt16LE(at) === START_ID) {
    const nameSize = buf.readUInt32LE(at + 36);
    const dataSize = buf.readUInt32LE(at + 40);
    const end = at + VAR_HEADER + nameSize + dataSize;
    if (end > storeEnd) throw badStore(file, `the variable at 0x${at.toString(16)} runs past the store`);
    const nameAt = at + VAR_HEADER;
    variables.push({
      offset: at,
      state: buf[at + 2]!,
      attributes: buf.readUInt32LE(at + 4),
      guid: guidString(buf.subarray(at + 44, at + 60)),
      name: buf.subarray(nameAt, nameAt + nameSize).toString('utf16le').replace(/\0+$/, ''),
      data: Buffer.from(buf.subarray(nameAt + nameSize, end)),
    });
    at = align4(end);
  }
  return { storeStart, storeEnd, freeAt: at, variables };
}

const align4 = (n: number) => (n + 3) & ~3;

/** EFI_TIME of a date, in UTC (16 bytes). */
function efiTime(d: Date): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(d.getUTCFullYear(), 0);
  b[2] = d.getUTCMonth() + 1;
  b[3] = d.getUTCDate();
  b[4] = d.getUTCHours();
  b[5] = d.getUTCMinutes();
  b[6] = d.getUTCSeconds();
  return b;
}

function variable(name: string, guid: string, attributes: number, data: Buffer, time?: Date): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf16le');
  const h = Buffer.alloc(VAR_HEADER);
  h.writeUInt16LE(START_ID, 0);
  h[2] = VAR_ADDED;
  h.writeUInt32LE(attributes, 4);
  if (time) efiTime(time).copy(h, 16);
  h.writeUInt32LE(nameBytes.length, 36);
  h.writeUInt32LE(data.length, 40);
  guidBytes(guid).copy(h, 44);
  const v = Buffer.concat([h, nameBytes, data]);
  return Buffer.concat([v, Buffer.alloc(align4(v.length) - v.length, 0xff)]);
}

export interface EnrollInput {
  readonly pk: { readonly certDer: Uint8Array; readonly owner: string };
  readonly kek: { readonly certDer: Uint8Array; readonly owner: string };
  readonly db: readonly { readonly certDer: Uint8Array; readonly owner: string }[];
  /** The time-based authentication timestamp of PK, KEK and db (later updates must be newer). */
  readonly time: Date;
}

/**
 * The template variables file with PK, KEK and db set (NV+BS+RT+time-based authenticated, each one X.509
 * signature list per certificate) and SecureBootEnable=1, CustomMode=0: the firmware boots in user mode
 * with Secure Boot on. Earlier copies of those variables in the template are marked deleted (so
 * Debian's .ms.fd or .snakeoil.fd work as templates too); everything else is kept. No dbx is written.
 */
export function enrollVarStore(template: Buffer, input: EnrollInput, file = 'template'): Buffer {
  const buf = Buffer.from(template);
  const store = readVarStore(buf, file);
  const replaced = new Set([`${EFI_GLOBAL_VARIABLE}/PK`, `${EFI_GLOBAL_VARIABLE}/KEK`, `${EFI_IMAGE_SECURITY_DATABASE}/db`, `${SECURE_BOOT_ENABLE_GUID}/SecureBootEnable`, `${CUSTOM_MODE_GUID}/CustomMode`]);
  for (const v of store.variables) {
    if (v.state === VAR_ADDED && replaced.has(`${v.guid}/${v.name}`)) buf[v.offset + 2] = VAR_ADDED & VAR_DELETED;
  }
  const auth = ATTR_NV | ATTR_BS | ATTR_RT | ATTR_TIME_AUTH;
  const add = Buffer.concat([
    variable('PK', EFI_GLOBAL_VARIABLE, auth, x509SignatureList(input.pk.certDer, input.pk.owner), input.time),
    variable('KEK', EFI_GLOBAL_VARIABLE, auth, x509SignatureList(input.kek.certDer, input.kek.owner), input.time),
    variable('db', EFI_IMAGE_SECURITY_DATABASE, auth, Buffer.concat(input.db.map((d) => x509SignatureList(d.certDer, d.owner))), input.time),
    variable('SecureBootEnable', SECURE_BOOT_ENABLE_GUID, ATTR_NV | ATTR_BS, Buffer.from([1])),
    variable('CustomMode', CUSTOM_MODE_GUID, ATTR_NV | ATTR_BS, Buffer.from([0])),
  ]);
  if (store.freeAt + add.length > store.storeEnd) throw badStore(file, `no room for the keys (${add.length} bytes, ${store.storeEnd - store.freeAt} free)`);
  if (!buf.subarray(store.freeAt, store.freeAt + add.length).every((b) => b === 0xff)) throw badStore(file, 'the free space of the variable store is not erased');
  add.copy(buf, store.freeAt);
  return buf;
}

async function readCertDer(file: string): Promise<Buffer> {
  try {
    return Buffer.from(new X509Certificate(await readFileLimited(file, MAX_PEM_BYTES)).raw);
  } catch (e) {
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'TRUST_KEY_INVALID', subject: file, message: `is not a readable certificate: ${describeSystemError(e)}`, cause: e });
  }
}

async function readGuid(file: string): Promise<string> {
  const g = (await readFileLimited(file, 1024)).toString('utf8').trim();
  guidBytes(g);
  return g.toLowerCase();
}

export interface OvmfVarsResult {
  readonly out: string;
  readonly template: string;
  readonly bytes: number;
  /** Subjects of the enrolled certificates. */
  readonly pk: string;
  readonly kek: string;
  readonly db: string;
}

/**
 * Writes `out`: the OVMF variables template (default Debian's empty OVMF_VARS_4M.fd) with the keyset's
 * PK, KEK and db enrolled and Secure Boot on. Boot it with the matching secure-boot firmware code
 * (`OVMF_CODE_4M.secboot.fd`, q35 with SMM).
 */
export async function writeOvmfVars(opts: { keyset: string; out: string; template?: string; dataHome?: string; now?: Date }): Promise<OvmfVarsResult> {
  const template = opts.template ?? DEFAULT_OVMF_VARS_TEMPLATE;
  const keys = uefiKeyPaths(opts);
  for (const k of UEFI_KEYS) {
    if (!(await exists(keys[k].cert)) || !(await exists(keys[k].guid))) {
      throw new MosError({ code: 'TRUST_KEYSET_UNKNOWN', subject: keys[k].dir, message: `keyset "${opts.keyset}" has no UEFI ${k} key`, hint: `create the keys with: mosb keyset uefi ${opts.keyset}` });
    }
  }
  let tpl: Buffer;
  try {
    tpl = await readFile(template);
  } catch (e) {
    throw new MosError({ code: 'NOT_FOUND', subject: template, message: `cannot read the OVMF variables template: ${describeSystemError(e)}`, hint: 'apt-get install ovmf, or give --template', cause: e });
  }
  const [pk, kek, db] = await Promise.all(UEFI_KEYS.map(async (k) => ({ certDer: await readCertDer(keys[k].cert), owner: await readGuid(keys[k].guid) })));
  const out = enrollVarStore(tpl, { pk: pk!, kek: kek!, db: [db!], time: opts.now ?? new Date() }, template);
  await writeFileAtomic(opts.out, out, { mode: 0o644 });
  const subject = (d: Buffer) => new X509Certificate(d).subject.replace(/\n/g, ', ');
  return { out: opts.out, template, bytes: out.length, pk: subject(pk!.certDer), kek: subject(kek!.certDer), db: subject(db!.certDer) };
}
