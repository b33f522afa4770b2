import { MosError } from '../base/index.js';
import type { Source } from './types.js';

// Distribution spec name and tag grammar (distribution-spec "Pulling manifests").
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_SOURCE = 1024;

/** Why `s` is not a valid target source, or undefined when it is. */
export function sourceProblem(s: string): string | undefined {
  try {
    parseSource(s);
    return undefined;
  } catch (e) {
    return (e as MosError).message;
  }
}

/**
 * Parses a target source: `docker://host[:port]/name:tag`, `[docker://]host[:port]/name@sha256:<hex>`
 * or `oci:DIR:TAG` (a local OCI layout; DIR holds no ':'). Throws MANIFEST_INVALID naming `subject`.
 */
export function parseSource(s: string, subject?: string): Source {
  const bad = (message: string): MosError =>
    new MosError({
      code: 'MANIFEST_INVALID',
      subject,
      message,
      hint: 'use docker://HOST[:PORT]/NAME:TAG, HOST[:PORT]/NAME@sha256:HEX or oci:DIR:TAG',
    });
  if (s.length === 0) throw bad('is empty');
  if (s.length > MAX_SOURCE) throw bad(`is longer than ${MAX_SOURCE} characters`);
  if (s.startsWith('oci:')) {
    const rest = s.slice(4);
    const i = rest.indexOf(':');
    if (i <= 0) throw bad(`${JSON.stringify(s)} has no layout directory and tag (oci:DIR:TAG)`);
    const dir = rest.slice(0, i);
    const tag = rest.slice(i + 1);
    if (tag === '') throw bad(`${JSON.stringify(s)} has no tag (oci:DIR:TAG)`);
    if (/[\0\n]/.test(dir) || /[\0\n]/.test(tag)) throw bad('contains a NUL or newline');
    return { kind: 'layout', dir, tag };
  }
  const scheme = s.match(/^([a-z][a-z0-9+.-]*):\/\//);
  if (scheme && scheme[1] !== 'docker') throw bad(`unsupported transport "${scheme[1]}://" (use docker:// or oci:)`);
  const explicit = scheme !== null;
  const ref = explicit ? s.slice('docker://'.length) : s;
  const slash = ref.indexOf('/');
  if (slash <= 0) throw bad(`${JSON.stringify(s)} names no registry host`);
  const host = ref.slice(0, slash);
  if (!HOST_RE.test(host)) throw bad(`"${host}" is not a registry host[:port]`);
  const port = host.match(/:([0-9]+)$/)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(`${port} is not a port (1-65535)`);
  let rest = ref.slice(slash + 1);
  let digest: string | undefined;
  let tag: string | undefined;
  const atSign = rest.indexOf('@');
  if (atSign >= 0) {
    digest = rest.slice(atSign + 1);
    rest = rest.slice(0, atSign);
    if (!DIGEST_RE.test(digest)) throw bad(`"${digest}" is not a sha256 digest (sha256:<64 lowercase hex>)`);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad(`"${tag}" is not a valid tag`);
  }
  if (!NAME_RE.test(rest)) throw bad(`"${rest}" is not a valid repository name (lowercase, digits, . _ - /)`);
  if (tag === undefined && digest === undefined) throw bad(`${JSON.stringify(s)} has neither a tag nor a digest`);
  return { kind: 'registry', host, name: rest, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}
