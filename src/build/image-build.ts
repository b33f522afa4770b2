import { MosError, parseReference, type Logger, type OnProgress } from '../base/index.js';
import { openReference, type RegistryAccess } from '../oci/index.js';
import type { SquashfsCompression } from '../squashfs/index.js';
import { buildImage, convertImage, type BuildImageResult, type ImageConfigOverrides, type ImageSource } from './build-image.js';

/** Options of `imageBuild` (`mosb image build`): images named by reference strings. */
export interface ImageBuildOptions extends RegistryAccess {
  /** Where the image goes: `oci:DIR:TAG` or `host[:port]/name:tag` (a tag is required). */
  readonly dest: string;
  /** Build from this directory... */
  readonly rootfs?: string;
  /** ...as one delta layer over this squashfs image, */
  readonly base?: string;
  /** or convert this tar-layer image layer by layer instead. */
  readonly from?: string;
  readonly config?: ImageConfigOverrides;
  readonly compression?: SquashfsCompression;
  readonly onProgress?: OnProgress;
  /** Stops the build (mksquashfs is killed, its output removed) and any transfer. */
  readonly signal?: AbortSignal;
  readonly log?: Logger;
}

/**
 * Builds (or converts) an image into DEST. Every input is checked, and every source resolved, before
 * DEST is opened, so a bad input leaves no layout behind.
 */
export async function imageBuild(opts: ImageBuildOptions): Promise<BuildImageResult> {
  if ((opts.from === undefined) === (opts.rootfs === undefined)) throw usage('give ROOTFS_DIR or --from REF (one of them)');
  if (opts.from !== undefined && opts.base !== undefined) throw usage('--from and --base do not combine');
  const tag = destTag(opts.dest);
  const common = {
    tag,
    dst: async () => (await openReference(opts.dest, { ...opts, create: true, ...(opts.log ? { log: opts.log } : {}) })).store,
    ...(opts.config ? { config: opts.config } : {}),
    ...(opts.compression ? { compression: opts.compression } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  };
  if (opts.from !== undefined) return convertImage({ ...common, from: await source(opts.from, opts) });
  return buildImage({ ...common, rootfs: opts.rootfs!, ...(opts.base !== undefined ? { base: await source(opts.base, opts) } : {}) });
}

// The tag DEST names: required, since an untagged image in a layout or registry is unreachable.
function destTag(dest: string): string {
  const ref = parseReference(dest);
  if (ref.tag === undefined || ref.digest !== undefined) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: dest, message: 'DEST needs a tag and no digest', hint: 'write oci:DIR:TAG or host[:port]/name:tag' });
  }
  return ref.tag;
}

async function source(text: string, opts: ImageBuildOptions): Promise<ImageSource> {
  const opened = await openReference(text, { ...opts, ...(opts.log ? { log: opts.log } : {}) });
  const reference = opened.reference ?? (opened.ref.kind === 'registry' ? 'latest' : undefined);
  if (reference === undefined) throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: text, message: 'name the image by tag or digest', hint: 'write oci:DIR:TAG' });
  return { src: opened.store, reference };
}

function usage(message: string): MosError {
  return new MosError({ code: 'USAGE', subject: 'mosb image build', message, hint: 'mosb image build ROOTFS_DIR DEST | mosb image build --from REF DEST' });
}
