import { ERROR_EXIT_CODES, MosError, isDigest, type ErrorCode, type RegistryLimits } from '../../base/index.js';
import type { Descriptor, Platform } from '../types.js';
import type { Credentials } from '../registry/credentials.js';

// The messages between mosctl (root) and its downloader child (an unprivileged uid), over Node's IPC
// channel with the 'advanced' (structured clone) serialization, so blob bytes travel as binary. The child
// speaks HTTP to registries and parses their replies; root treats everything it answers as untrusted:
// descriptors are shape-checked, documents and blobs verified against the digest root asked for.

/** How the child opens one repository: RegistryOptions without functions (no fetch, no logger). */
export interface WireRepositoryOptions extends RegistryLimits {
  readonly host: string;
  readonly name: string;
  readonly insecureHosts?: readonly string[];
  readonly caPems?: readonly string[];
  readonly credentials?: Credentials;
  readonly platform?: Platform;
  readonly maxRetryAfterMs?: number;
  readonly concurrency?: number;
}

export type CallOp = 'resolve' | 'fetchBytes' | 'exists' | 'referrers';

/** Parent → child. */
export type Request =
  | { readonly t: 'open'; readonly sid: number; readonly opts: WireRepositoryOptions }
  | { readonly t: 'call'; readonly id: number; readonly sid: number; readonly op: CallOp; readonly args: readonly unknown[] }
  | { readonly t: 'blob'; readonly id: number; readonly sid: number; readonly desc: Descriptor; readonly offset: number }
  /** The parent consumed `bytes` more of stream `id`: the child may send that much more. */
  | { readonly t: 'ack'; readonly id: number; readonly bytes: number }
  | { readonly t: 'cancel'; readonly id: number };

/** Child → parent. */
export type Reply =
  | { readonly t: 'ok'; readonly id: number; readonly value: unknown }
  | { readonly t: 'err'; readonly id: number; readonly error: WireError }
  | { readonly t: 'chunk'; readonly id: number; readonly data: Uint8Array }
  | { readonly t: 'end'; readonly id: number }
  | { readonly t: 'log'; readonly sid: number; readonly level: 'debug' | 'info' | 'warn'; readonly msg: string; readonly fields?: Record<string, unknown> };

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly subject?: string;
  readonly hint?: string;
}

// Blob bytes do not take the IPC channel (its structured clone copies every message twice): they go
// over a pipe on the child's fd 4 as frames of a 9-byte header (type, stream id, payload length, big
// endian) and the payload, which root passes on as it arrives, without gathering a frame.
/** The child's fd of the data pipe. */
export const DATA_FD = 4;
/** A piece of the blob. */
export const FRAME_CHUNK = 1;
/** The blob is complete (no payload). */
export const FRAME_END = 2;
/** The blob failed: the payload is a WireError as JSON. */
export const FRAME_ERROR = 3;
/** Largest payload root accepts in one frame (a chunk) and for an error. */
export const MAX_FRAME = 16 * 1024 * 1024;
export const MAX_ERROR_FRAME = 64 * 1024;

/** Unacknowledged bytes a blob stream may have in flight (the child waits beyond it). */
export const STREAM_WINDOW = 8 * 1024 * 1024;

export function toWire(e: unknown): WireError {
  if (e instanceof MosError) return e.toJSON();
  if ((e as Error)?.name === 'AbortError') return { code: 'CANCELED', message: 'canceled' };
  return { code: 'INTERNAL', message: `downloader: ${(e as Error)?.message ?? String(e)}` };
}

/** The child's error as a MosError; a code root does not know (a broken or hostile child) is a protocol error. */
export function fromWire(w: WireError): MosError {
  const known = typeof w?.code === 'string' && Object.hasOwn(ERROR_EXIT_CODES, w.code);
  return new MosError({
    code: known ? (w.code as ErrorCode) : 'REGISTRY_PROTOCOL',
    message: typeof w?.message === 'string' ? w.message.slice(0, 2000) : 'the downloader sent a malformed error',
    ...(typeof w?.subject === 'string' ? { subject: w.subject.slice(0, 500) } : {}),
    ...(typeof w?.hint === 'string' ? { hint: w.hint.slice(0, 500) } : {}),
  });
}

/** A descriptor from the child, shape-checked (mediaType, digest, size); REGISTRY_PROTOCOL otherwise. */
export function checkDescriptor(v: unknown, subject: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (
    !d || typeof d !== 'object' ||
    typeof d.mediaType !== 'string' || d.mediaType.length > 255 ||
    typeof d.digest !== 'string' || !isDigest(d.digest) ||
    typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0 ||
    (d.artifactType !== undefined && typeof d.artifactType !== 'string') ||
    (d.annotations !== undefined && (typeof d.annotations !== 'object' || d.annotations === null))
  ) {
    throw new MosError({ code: 'REGISTRY_PROTOCOL', subject, message: 'the downloader answered with a malformed descriptor' });
  }
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.artifactType !== undefined ? { artifactType: d.artifactType } : {}),
    ...(d.annotations !== undefined ? { annotations: d.annotations } : {}),
  };
}
