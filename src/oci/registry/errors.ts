import { MosError, type ErrorCode } from '../../base/index.js';
import type { HttpResponse } from './http.js';

/** A URL safe to show: no user info, no query (upload `_state` tokens, signed blob-storage URLs). */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(String(url));
    u.username = '';
    u.password = '';
    return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '<invalid url>';
  }
}

/** One entry of a distribution-spec error body `{"errors":[{code,message,detail}]}`. */
export interface WireError {
  readonly code: string;
  readonly message: string;
}

/** Parses an error body; anything that is not the spec's JSON shape gives an empty list. */
export function parseErrorBody(text: string): WireError[] {
  try {
    const doc = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is { code?: unknown; message?: unknown } => !!e && typeof e === 'object')
      .map((e) => ({ code: typeof e.code === 'string' ? e.code : 'UNKNOWN', message: typeof e.message === 'string' ? e.message : '' }));
  } catch {
    return [];
  }
}

const WIRE_CODE: Record<string, ErrorCode> = {
  UNAUTHORIZED: 'REGISTRY_UNAUTHORIZED',
  DENIED: 'REGISTRY_DENIED',
  BLOB_UNKNOWN: 'OCI_BLOB_UNKNOWN',
  MANIFEST_UNKNOWN: 'OCI_MANIFEST_UNKNOWN',
  NAME_UNKNOWN: 'OCI_MANIFEST_UNKNOWN',
};

/** Most error bodies are tiny; a hostile one is cut here. */
const MAX_ERROR_BODY = 64 * 1024;

/** Reads at most MAX_ERROR_BODY bytes of a response body as text, then drops the rest. */
export async function readErrorText(res: HttpResponse): Promise<string> {
  if (!res.body) return '';
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for await (const chunk of res.body) {
      parts.push(chunk);
      n += chunk.byteLength;
      if (n >= MAX_ERROR_BODY) break;
    }
  } catch {
    // A broken error body still leaves the status code to report.
  } finally {
    await res.body.cancel().catch(() => {});
  }
  return Buffer.concat(parts).subarray(0, MAX_ERROR_BODY).toString('utf8');
}

/**
 * Turns a failed response into one MosError: the body's first `errors[].code` mapped to our codes
 * (MANIFEST_UNKNOWN → OCI_MANIFEST_UNKNOWN, DENIED → REGISTRY_DENIED, …), else by status. The subject
 * is the URL without credentials or query. `what` says what we were doing ("fetch manifest").
 */
export async function responseError(res: HttpResponse, url: string, what: string, overrides: Partial<Record<number, ErrorCode>> = {}): Promise<MosError> {
  const text = await readErrorText(res);
  const wire = parseErrorBody(text);
  const first = wire[0];
  let code: ErrorCode = overrides[res.status] ?? (first ? WIRE_CODE[first.code] : undefined) ?? byStatus(res.status);
  if (overrides[res.status] === undefined && first === undefined && res.status === 404) code = 'NOT_FOUND';
  const detail = first ? `${first.code}${first.message ? `: ${first.message}` : ''}` : `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  return new MosError({
    code,
    subject: redactUrl(url),
    message: `${what} failed: ${detail}`,
    hint: hintFor(code),
  });
}

function byStatus(status: number): ErrorCode {
  if (status === 401) return 'REGISTRY_UNAUTHORIZED';
  if (status === 403) return 'REGISTRY_DENIED';
  if (status === 404) return 'NOT_FOUND';
  return 'REGISTRY_ERROR';
}

function hintFor(code: ErrorCode): string | undefined {
  switch (code) {
    case 'REGISTRY_UNAUTHORIZED':
      return 'log in (skopeo login / docker login) or set REGISTRY_AUTH_FILE to an auth file with credentials for this registry';
    case 'REGISTRY_DENIED':
      return 'the credentials are valid but lack access to this repository';
    case 'OCI_MANIFEST_UNKNOWN':
    case 'OCI_BLOB_UNKNOWN':
    case 'OCI_TAG_UNKNOWN':
      return 'check the repository name, tag or digest';
    default:
      return undefined;
  }
}

// Node/undici/OpenSSL error codes, found anywhere in an error's cause chain.
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE', 'CERT_REJECTED', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
]);
/** TLS handshake errors that mean "the server speaks plain HTTP", not "the certificate is bad". */
export const PLAIN_HTTP_CODES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'EPROTO']);
const RETRIABLE_CODES = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'UND_ERR_CLOSED', 'ECONNABORTED', 'EAI_AGAIN']);

/** Every `code` string along an error's cause chain. */
export function errorCodes(e: unknown): string[] {
  const codes: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && typeof cur === 'object' && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string') codes.push(c);
    if (cur instanceof Error && /other side closed|terminated|socket hang up/i.test(cur.message)) codes.push('UND_ERR_SOCKET');
  }
  return codes;
}

/** True when a transport failure is worth retrying (connection reset, refused, closed mid-response). */
export function isRetriableNetworkError(e: unknown): boolean {
  return !(e instanceof MosError) && errorCodes(e).some((c) => RETRIABLE_CODES.has(c));
}

/** Maps a fetch failure (not an HTTP status) to REGISTRY_TLS / REGISTRY_UNREACHABLE, naming the redacted URL. */
export function networkError(e: unknown, url: string, what: string): MosError {
  if (e instanceof MosError) return e;
  const codes = errorCodes(e);
  const tls = codes.find((c) => TLS_CODES.has(c) || c.startsWith('ERR_TLS') || c.startsWith('ERR_SSL'));
  if (tls) {
    return new MosError({
      code: 'REGISTRY_TLS',
      subject: redactUrl(url),
      message: `${what} failed: TLS verification failed (${tls})`,
      hint: 'pass the registry CA with --registry-ca FILE, or check the host name in the certificate',
      cause: e,
    });
  }
  const detail = codes.find((c) => c !== 'UND_ERR_SOCKET') ?? codes[0] ?? (e instanceof Error ? e.message : String(e));
  return new MosError({
    code: 'REGISTRY_UNREACHABLE',
    subject: redactUrl(url),
    message: `${what} failed: ${detail}`,
    hint: 'check that the registry is running and reachable',
    cause: e,
  });
}
