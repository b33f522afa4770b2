import { MosError } from '../base/index.js';
import { MANIFEST_MEDIA_TYPES } from './media-types.js';
import type { Descriptor, Platform } from './types.js';

// The one platform picker: which manifest of an index this machine (or a requested platform) uses.

const GOARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of this machine in OCI terms (GOARCH/GOOS names). */
export function hostPlatform(): Platform {
  return { architecture: GOARCH[process.arch] ?? process.arch, os: process.platform === 'win32' ? 'windows' : process.platform };
}

/** `os/arch[/variant]` for messages. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function matches(have: Platform | undefined, want: Platform): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  if (want.variant !== undefined && have.variant !== want.variant) return false;
  if (want['os.version'] !== undefined && have['os.version'] !== want['os.version']) return false;
  return (want['os.features'] ?? []).every((f) => have['os.features']?.includes(f));
}

/**
 * Picks the manifest for `platform` (default the host's) from an index's entries: the first entry with
 * a manifest media type whose platform matches (image-spec: first match wins; unknown media types are
 * skipped, never an error). Pure. Throws OCI_MANIFEST_UNKNOWN listing the platforms present.
 */
export function resolvePlatform(manifests: readonly Descriptor[], platform: Platform = hostPlatform(), subject?: string): Descriptor {
  const known: readonly string[] = MANIFEST_MEDIA_TYPES;
  const candidates = manifests.filter((d) => known.includes(d.mediaType));
  const found = candidates.find((d) => matches(d.platform, platform));
  if (found) return found;
  const present = [...new Set(candidates.filter((d) => d.platform).map((d) => formatPlatform(d.platform!)))];
  throw new MosError({
    code: 'OCI_MANIFEST_UNKNOWN',
    subject,
    message: `no manifest for ${formatPlatform(platform)} in the image index${present.length ? ` (it has ${present.join(', ')})` : ''}`,
    hint: 'choose one of the platforms the index lists, or reference a manifest by digest',
  });
}
