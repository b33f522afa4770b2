import { isDigest, type Digest } from './digest.js';
import { MosError } from './errors.js';

// The one grammar of image references and of the names that become tags and paths. Pure.

/** Where a SOURCE points: a registry repository or a local OCI layout (discriminated on `kind`). */
export type Reference =
  | {
      readonly kind: 'registry';
      /** host[:port] as written (docker.io normalised to registry-1.docker.io by the client). */
      readonly host: string;
      /** repository name, e.g. `machine/install` */
      readonly name: string;
      readonly tag?: string;
      readonly digest?: Digest;
    }
  | {
      readonly kind: 'layout';
      readonly dir: string;
      readonly tag?: string;
      readonly digest?: Digest;
    };

// distribution-spec §"Pulling manifests": <name> and <reference> grammars.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// Target names, nsgroups and storage labels become paths, unit names and GPT partition names.
const TARGET_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
// image-spec annotations.md, org.opencontainers.image.ref.name: component ("/" component)*.
const LAYOUT_TAG_COMPONENT = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const LAYOUT_TAG_RE = new RegExp(`^${LAYOUT_TAG_COMPONENT}(?:/${LAYOUT_TAG_COMPONENT})*$`);
/** Longest layout tag we accept (the spec sets none; mos's digest tags are 71 characters). */
export const MAX_LAYOUT_TAG_LENGTH = 512;
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::([0-9]{1,5}))?$/;
const DIGEST_SUFFIX_RE = /:((?:sha256:[a-f0-9]{64})|(?:sha512:[a-f0-9]{128}))$/;
/** Clients commonly cap host + "/" + name at 255 characters. */
const MAX_NAME_LENGTH = 255;

/** The Docker Hub host as users write it; the client talks to `registry-1.docker.io`. */
export const DOCKER_HUB = 'docker.io';

/** True when `s` is a registry tag (distribution-spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`). */
export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** True when `s` is a repository name (distribution-spec path components, lowercase). */
export function isRepositoryName(s: string): boolean {
  return NAME_RE.test(s);
}

/** True when `s` is a tag of an OCI layout's index.json (image-layout `org.opencontainers.image.ref.name`). */
export function isLayoutTag(s: string): boolean {
  return s.length <= MAX_LAYOUT_TAG_LENGTH && LAYOUT_TAG_RE.test(s);
}

/**
 * True when `s` may name a target, nsgroup or storage label: lowercase `[a-z0-9][a-z0-9._-]{0,62}`
 * and no `..`, since it becomes a path component, a unit name and a GPT partition name.
 */
export function isTargetName(s: string): boolean {
  return TARGET_NAME_RE.test(s) && !s.includes('..');
}

function invalid(input: string, message: string, hint?: string): MosError {
  return new MosError({
    code: 'OCI_REFERENCE_INVALID',
    subject: input,
    message,
    hint: hint ?? 'write [docker://]host[:port]/name[:tag][@sha256:<hex>] or oci:DIR[:TAG]',
  });
}

/**
 * Parses `[docker://]host[:port]/repo[:tag][@sha256:…]` and `oci:DIR[:TAG]` / `oci:DIR@sha256:…`.
 * For layouts the tag is split at the last colon, except a digest-shaped tag (`oci:DIR:sha256:<hex>`,
 * how mos tags images by their full digest), which is kept whole as the tag. Registry references whose
 * first component is not a host (no `.` or `:`, not `localhost`) are Docker Hub ones (`library/` added
 * to one-component names). Throws OCI_REFERENCE_INVALID naming what is wrong.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string' || input.length === 0) throw invalid(String(input), 'empty reference');
  if (/\s/.test(input)) throw invalid(input, 'reference contains whitespace');
  if (input.startsWith('oci:')) return parseLayout(input);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input) && !input.startsWith('docker://')) {
    throw invalid(input, `unsupported transport "${input.slice(0, input.indexOf(':'))}"`);
  }
  return parseRegistry(input, input.startsWith('docker://') ? input.slice('docker://'.length) : input);
}

function parseLayout(input: string): Reference {
  let rest = input.slice('oci:'.length);
  let digest: Digest | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && isDigest(rest.slice(at + 1))) {
    digest = rest.slice(at + 1) as Digest;
    rest = rest.slice(0, at);
  }
  let dir = rest;
  let tag: string | undefined;
  const digestTag = DIGEST_SUFFIX_RE.exec(rest);
  if (digestTag) {
    tag = digestTag[1];
    dir = rest.slice(0, digestTag.index);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      dir = rest.slice(0, colon);
      tag = rest.slice(colon + 1);
      if (tag === '') throw invalid(input, 'empty tag after ":"');
      if (!isLayoutTag(tag)) throw invalid(input, `"${tag}" is not a valid layout tag (components of A-Za-z0-9 joined by one of -._:@+, separated by "/")`);
    }
  }
  if (dir === '') throw invalid(input, 'missing layout directory after "oci:"');
  if (tag !== undefined && digest !== undefined) throw invalid(input, 'a layout reference takes a tag or a digest, not both');
  return { kind: 'layout', dir, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function parseRegistry(input: string, rest: string): Reference {
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw invalid(input, `"${d}" is not a digest (want sha256:<64 lowercase hex>)`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(input, `"${tag}" is not a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})`);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  let host: string;
  let name: string;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    host = first;
    name = rest.slice(slash + 1);
    const m = HOST_RE.exec(host);
    if (!m) throw invalid(input, `"${host}" is not a valid registry host`);
    if (m[1] !== undefined && (Number(m[1]) < 1 || Number(m[1]) > 65535)) throw invalid(input, `port ${m[1]} is out of range`);
  } else {
    // `127.0.0.1:5000` or `localhost` alone: a host without a repository, not a Docker Hub name.
    if (slash < 0 && (rest.includes('.') || rest === 'localhost')) throw invalid(input, `missing repository name after host "${rest}${tag !== undefined ? `:${tag}` : ''}"`);
    host = DOCKER_HUB;
    name = rest;
  }
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = DOCKER_HUB;
  if (host === DOCKER_HUB && name !== '' && !name.includes('/')) name = `library/${name}`;
  if (name === '') throw invalid(input, 'missing repository name');
  if (!NAME_RE.test(name)) throw invalid(input, `"${name}" is not a valid repository name (lowercase a-z0-9, separators . _ __ - /)`);
  if (host.length + 1 + name.length > MAX_NAME_LENGTH) throw invalid(input, `host and name are longer than ${MAX_NAME_LENGTH} characters`);
  return { kind: 'registry', host, name, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Formats a reference back into the string form `parseReference` reads (round-trips). */
export function formatReference(ref: Reference): string {
  switch (ref.kind) {
    case 'registry':
      return `${ref.host}/${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
    case 'layout':
      return `oci:${ref.dir}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
  }
}
