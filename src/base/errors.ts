/**
 * The one error type a user can see. Every failure carries a stable `code` (API: the initrd, scripts and
 * the upgrade API branch on it), the `subject` at fault (file, field path, target, URL without
 * credentials), a `message` saying what is wrong and a `hint` saying what to do next.
 */

// Codes are API: add, never renumber. Exit codes: 0 ok, 2 usage, 3 invalid input, 4 trust rejected,
// 5 integrity, 6 not found, 7 remote, 8 conflict, 9 host, 70 internal bug; 100 = an update is available.
const EXIT_CODE = {
  USAGE: 2,

  // invalid input (3)
  INPUT_INVALID: 3,
  MANIFEST_INVALID: 3,
  MANIFEST_TOO_LARGE: 3,
  MANIFEST_UNSUPPORTED: 3,
  CONFIG_INVALID: 3,
  OCI_REFERENCE_INVALID: 3,
  OCI_MANIFEST_INVALID: 3,
  OCI_MEDIA_TYPE_UNSUPPORTED: 3,
  OCI_SIZE_EXCEEDS_LIMIT: 3,
  OCI_LAYOUT_INVALID: 3,
  ATOMFS_LAYER_UNSUPPORTED: 3,
  ATOMFS_OPTIONS_TOO_LONG: 3,
  IMAGE_INVALID: 3,
  TRUST_PEM_INVALID: 3,
  TRUST_KEY_INVALID: 3,
  API_REQUEST_INVALID: 3,

  // trust rejected (4)
  TRUST_SIGNATURE_INVALID: 4,
  TRUST_CERT_UNTRUSTED: 4,
  TRUST_CERT_EXPIRED: 4,
  TRUST_CERT_NOT_YET_VALID: 4,
  TRUST_CERT_INVALID: 4,
  TRUST_BUNDLE_INVALID: 4,
  TRUST_WEAK_KEY: 4,
  TRUST_WEAK_ALGORITHM: 4,
  API_UNAUTHORIZED: 4,
  /** The client's role does not allow the request (API: 403). */
  API_FORBIDDEN: 4,

  // integrity (5)
  OCI_DIGEST_MISMATCH: 5,
  OCI_SIZE_MISMATCH: 5,
  OCI_BLOB_CORRUPT: 5,
  ATOMFS_VERITY_MISMATCH: 5,
  ATOMFS_VERITY_MISSING: 5,
  CONFIG_CORRUPT: 5,
  SYSTEM_INTEGRITY: 5,
  /** A boot assessment check failed (mosctl assess): the generation is not good. */
  SYSTEM_UNHEALTHY: 5,

  // not found (6)
  NOT_FOUND: 6,
  API_OPERATION_UNKNOWN: 6,
  API_PLAN_UNKNOWN: 6,
  OCI_BLOB_UNKNOWN: 6,
  OCI_MANIFEST_UNKNOWN: 6,
  OCI_TAG_UNKNOWN: 6,
  OCI_REFERRER_UNKNOWN: 6,
  CONFIG_NOT_INSTALLED: 6,
  CONFIG_GENERATION_UNKNOWN: 6,
  TRUST_CA_MISSING: 6,
  TRUST_KEYSET_UNKNOWN: 6,
  SYSTEM_TARGET_UNKNOWN: 6,

  // remote (7)
  REGISTRY_UNREACHABLE: 7,
  /** The upgrade API server (mosctl --server) could not be reached or answered nonsense. */
  API_UNREACHABLE: 7,
  /** The upgrade API server answered 429: retry after the time it named. */
  API_RATE_LIMITED: 7,
  REGISTRY_ERROR: 7,
  REGISTRY_UNAUTHORIZED: 7,
  REGISTRY_DENIED: 7,
  REGISTRY_TLS: 7,
  REGISTRY_INSECURE_REFUSED: 7,
  REGISTRY_TIMEOUT: 7,
  REGISTRY_PROTOCOL: 7,
  REGISTRY_BLOCKED: 7,

  // conflict (8)
  CONFIG_LOCKED: 8,
  /** Another mutating operation runs (API: 409 naming it). */
  API_BUSY: 8,
  /** The operation is past its commit point (or finished) and can no longer be canceled. */
  API_NOT_CANCELABLE: 8,
  /** The idempotency key was used before for a different request. */
  API_IDEMPOTENCY_CONFLICT: 8,
  /** The operation was canceled before its commit point: nothing changed. */
  CANCELED: 8,
  /** The manifest the source names now is not the one the plan or request required. */
  SYSTEM_MANIFEST_CHANGED: 8,
  /** The install manifest failed its boot assessment before and the machine fell back (update --retry-failed). */
  SYSTEM_MANIFEST_FAILED: 8,
  CONFIG_EXISTS: 8,
  CONFIG_CONFLICT: 8,
  SYSTEM_PRODUCT_MISMATCH: 8,
  SYSTEM_DOWNGRADE: 8,
  SYSTEM_PARTIAL_INSTALL: 8,
  ALREADY_EXISTS: 8,
  ATOMFS_BUSY: 8,
  OCI_TAG_AMBIGUOUS: 8,
  /** A site bundle older than the one the machine recorded, or the same version with other content. */
  SITE_BUNDLE_OLDER: 8,

  // host (9)
  HOST_EXEC_FAILED: 9,
  HOST_MOUNT_FAILED: 9,
  HOST_IO: 9,
  /** Not enough free space in the store for what an update must fetch. */
  HOST_NO_SPACE: 9,
  HOST_PERMISSION: 9,
  HOST_TOOL_MISSING: 9,
  RUNTIME_LXC_FAILED: 9,
  RUNTIME_NETWORK: 9,
  SYSTEM_TARGETS_FAILED: 9,

  INTERNAL: 70,

  // not an error: `mosctl upgrade --check` found an update (as `dnf check-update` exits 100)
  UPDATE_AVAILABLE: 100,
} as const;

export type ErrorCode = keyof typeof EXIT_CODE;

/** Exit code of a code; codes and exit codes are API. */
export function exitCodeOf(code: ErrorCode): number {
  return EXIT_CODE[code];
}

/** All codes with their exit codes, for the README table and tests. */
export const ERROR_EXIT_CODES: Readonly<Record<ErrorCode, number>> = EXIT_CODE;

export interface MosErrorInit<C extends ErrorCode = ErrorCode> {
  readonly code: C;
  readonly message: string;
  readonly subject?: string | undefined;
  readonly hint?: string | undefined;
  readonly cause?: unknown;
}

export class MosError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  /** The file, field, target or URL at fault (never with credentials). */
  readonly subject: string | undefined;
  /** What the user can do next. */
  readonly hint: string | undefined;

  constructor(init: MosErrorInit<C>) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.subject = init.subject;
    this.hint = init.hint;
  }

  get exitCode(): number {
    return EXIT_CODE[this.code];
  }

  /** What --json prints: stable fields only; cause and stack stay behind --debug. */
  toJSON(): { code: C; message: string; subject?: string; hint?: string } {
    return {
      code: this.code,
      message: this.message,
      ...(this.subject !== undefined ? { subject: this.subject } : {}),
      ...(this.hint !== undefined ? { hint: this.hint } : {}),
    };
  }
}

/**
 * Whether trying the same thing again later may succeed: a registry that failed (exit 7), a busy lock
 * or server, an interrupted run. Part of the one error shape of the CLIs (`--json`) and the upgrade API.
 */
export function isRetryable(code: ErrorCode): boolean {
  return exitCodeOf(code) === 7 || code === 'CONFIG_LOCKED' || code === 'CANCELED' || code === 'API_BUSY';
}

/** `{"error": {code, message, subject?, hint?, retryable}}`: what a failed command prints with --json. */
export function errorDocument(err: MosError): { error: ReturnType<MosError['toJSON']> & { retryable: boolean } } {
  return { error: { ...err.toJSON(), retryable: isRetryable(err.code) } };
}

/** True when `e` is a MosError, optionally with one of `codes`. */
export function isMosError(e: unknown, ...codes: ErrorCode[]): e is MosError {
  return e instanceof MosError && (codes.length === 0 || codes.includes(e.code));
}

/** Wraps anything thrown into a MosError once, at a module edge; MosErrors pass through unchanged. */
export function asMosError(e: unknown, init: Omit<MosErrorInit, 'cause'>): MosError {
  if (e instanceof MosError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return new MosError({ ...init, message: `${init.message}: ${detail}`, cause: e });
}

/** Error codes Node's fs and net layers report, mapped to a short phrase for messages. */
export function describeSystemError(e: unknown): string {
  if (e && typeof e === 'object' && 'code' in e) {
    const code = String((e as { code: unknown }).code);
    const phrases: Record<string, string> = {
      ENOENT: 'no such file or directory',
      EACCES: 'permission denied',
      EPERM: 'operation not permitted',
      ENOSPC: 'no space left on device',
      EEXIST: 'already exists',
      ENOTDIR: 'not a directory',
      EISDIR: 'is a directory',
      EROFS: 'read-only file system',
      ECONNREFUSED: 'connection refused',
      ECONNRESET: 'connection reset',
      ETIMEDOUT: 'timed out',
      ENOTFOUND: 'host not found',
    };
    return phrases[code] ?? code;
  }
  return e instanceof Error ? e.message : String(e);
}
