import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MosError, isTag, sha256Digest, type Logger, type OnProgress } from '../base/index.js';
import { fileError } from '../host/index.js';
import {
  OCI_CONFIG, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, OCI_LAYER_TAR_ZSTD,
  DOCKER_LAYER_TAR_GZIP, MAX_MANIFEST_BYTES, hostPlatform, parseImageIndex, parseImageManifest, resolvePlatform,
  type ContentSource, type ContentTarget, type Descriptor,
} from '../oci/index.js';
import {
  buildSquashfsLayer, diffTrees, parseSquashfsSuperblock, verityHashOffset, SQUASHFS_SUPERBLOCK_SIZE, extractTarLayer, isSquashfsMediaType, materializeDelta, unpackSquashfsLayers,
  LEGACY_VERITY_ROOT_HASH_ANNOTATION, VERITY_ROOT_HASH_ANNOTATION,
  type LayerBuild, type SquashfsCompression, type TarCompression,
} from '../squashfs/index.js';

/** Image config fields `mosb image build` sets (OCI image-spec config.md `config` object). */
export interface ImageConfigOverrides {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** `KEY=VALUE` entries; they replace same-named entries of the base image. */
  readonly env?: readonly string[];
  readonly workdir?: string;
  readonly user?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** An image to read from: a store and a tag or digest in it. */
export interface ImageSource {
  readonly src: ContentSource;
  readonly reference: string;
}

interface CommonOptions {
  /**
   * Where the image goes, or a function opening it: called only after every input check passed, so a
   * rejected build creates no destination (e.g. no new layout directory).
   */
  readonly dst: ContentTarget | (() => Promise<ContentTarget>);
  /** Tag the built manifest gets in `dst`. */
  readonly tag: string;
  readonly config?: ImageConfigOverrides;
  readonly compression?: SquashfsCompression;
  /** Where temp trees and layer files go; default the OS temp dir. */
  readonly workDir?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  readonly log?: Logger;
}

export interface BuildImageOptions extends CommonOptions {
  /** Directory whose content the image holds. */
  readonly rootfs: string;
  /** Squashfs image to stack on: the new layer then holds only the difference (needs root). */
  readonly base?: ImageSource;
  /** Config `created` and history time; default 1970-01-01T00:00:00Z so builds are reproducible. */
  readonly created?: Date;
}

export interface ConvertImageOptions extends CommonOptions {
  /** A tar-layer image (as skopeo or umoci write them) to convert layer by layer (needs root). */
  readonly from: ImageSource;
}

/** One squashfs layer of the result, as its manifest lists it. */
export type BuiltLayer = Pick<LayerBuild, 'digest' | 'size' | 'mediaType' | 'rootHash' | 'hashOffset'>;

export interface BuildImageResult {
  /** The pushed (and tagged) image manifest. */
  readonly descriptor: Descriptor;
  /** Every layer of the image, bottom first (base layers included). */
  readonly layers: readonly BuiltLayer[];
}

const EPOCH = new Date(0);
const TAR_COMPRESSION: Readonly<Record<string, TarCompression>> = {
  [OCI_LAYER_TAR]: 'none',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  [OCI_LAYER_TAR_GZIP]: 'gzip',
  [DOCKER_LAYER_TAR_GZIP]: 'gzip',
  [OCI_LAYER_TAR_ZSTD]: 'zstd',
};

/**
 * Builds a squashfs-layer OCI image from `rootfs` (one layer with verity data, or with `base` one
 * delta layer over the base's layers) and pushes its blobs and manifest to `dst`, tagged `tag`.
 * Reproducible: the same tree, base and options give the same manifest digest. Every input is
 * checked before anything is pushed.
 */
export async function buildImage(opts: BuildImageOptions): Promise<BuildImageResult> {
  checkTag(opts.tag);
  const rootfs = resolve(opts.rootfs);
  await checkDir(rootfs);
  const base = opts.base ? await readImage(opts.base, 'base') : undefined;
  if (base) {
    base.manifest.layers.forEach((l, i) => {
      if (!isSquashfsMediaType(l.mediaType)) {
        throw new MosError({
          code: 'IMAGE_INVALID',
          subject: `${opts.base!.reference}: layers[${i}]`,
          message: `base image is not a squashfs image (layer media type ${l.mediaType})`,
          hint: 'convert it first with `mosb image build --from REF DEST`',
        });
      }
    });
    requireRoot('--base');
  }
  const dst = await openTarget(opts.dst);
  return withWorkDir(opts.workDir, async (work) => {
    let layerRoot = rootfs;
    let whiteouts: readonly string[] = [];
    const baseOffsets: number[] = [];
    if (base) {
      step(opts, 'unpack-base', `${base.manifest.layers.length} layer(s)`);
      const blobs: string[] = [];
      for (const [i, l] of base.manifest.layers.entries()) blobs.push(await download(base.source.src, l, join(work, `base-${i}`), opts));
      const merged = join(work, 'merged');
      for (const b of blobs) baseOffsets.push(await hashOffsetOf(b));
      await unpackSquashfsLayers({ layers: blobs, dest: merged, scratch: await mkdirIn(work, 'scratch') });
      step(opts, 'diff');
      const delta = await diffTrees(merged, rootfs);
      opts.log?.debug('delta', { entries: delta.entries.length, whiteouts: delta.whiteouts.length, opaque: delta.opaqueDirs.length });
      layerRoot = await mkdirIn(work, 'delta');
      await materializeDelta({ upper: rootfs, delta, dest: layerRoot, scratch: join(work, 'delta') });
      whiteouts = delta.whiteouts;
    }
    step(opts, 'squashfs', rootfs);
    const layer = await buildSquashfsLayer({ rootfs: layerRoot, outFile: join(work, 'layer.sqfs'), whiteouts, ...layerOpts(opts) });
    const created = (opts.created ?? EPOCH).toISOString().replace('.000Z', 'Z');
    const config = imageConfig(base?.config ?? defaultConfig(created), opts.config, {
      diffIds: [...diffIdsOf(base?.config), layer.digest],
      history: { created, created_by: 'mosb image build' },
      created,
    });
    const baseLayers = base ? await copyLayers(base.source.src, base.manifest.layers, baseOffsets, dst, opts) : [];
    return pushImage(opts, dst, config, [...baseLayers, await pushLayer(opts, dst, layer)]);
  });
}

/**
 * Converts a tar-layer image into squashfs form, one squashfs layer (with verity data) per tar layer,
 * OCI whiteouts turned into overlay ones, the image config kept with `rootfs.diff_ids` set to the new
 * layers; pushes it to `dst` tagged `tag`. Needs root (owners, devices, `trusted.*` xattrs).
 */
export async function convertImage(opts: ConvertImageOptions): Promise<BuildImageResult> {
  checkTag(opts.tag);
  const source = await readImage(opts.from, 'from');
  const compressions = source.manifest.layers.map((l, i) => {
    const c = TAR_COMPRESSION[l.mediaType];
    if (c === undefined) {
      throw new MosError({
        code: 'OCI_MEDIA_TYPE_UNSUPPORTED',
        subject: `${opts.from.reference}: layers[${i}]`,
        message: `layer media type ${l.mediaType} is not a tar layer`,
        hint: isSquashfsMediaType(l.mediaType) ? 'the image is already in squashfs form: copy it instead' : 'convert images with tar, tar+gzip or tar+zstd layers',
      });
    }
    return c;
  });
  requireRoot('--from');
  const dst = await openTarget(opts.dst);
  return withWorkDir(opts.workDir, async (work) => {
    const layers: BuiltLayer[] = [];
    for (const [i, l] of source.manifest.layers.entries()) {
      step(opts, 'convert', `layer ${i + 1}/${compressions.length}`);
      const blob = await download(opts.from.src, l, join(work, `tar-${i}`), opts);
      const tree = await mkdirIn(work, `tree-${i}`);
      const { whiteouts } = await extractTarLayer({ blob, compression: compressions[i]!, dest: tree, subject: `${opts.from.reference}: layers[${i}] (${l.digest})` });
      await rm(blob, { force: true });
      const built = await buildSquashfsLayer({ rootfs: tree, outFile: join(work, `layer-${i}.sqfs`), whiteouts, ...layerOpts(opts) });
      await rm(tree, { recursive: true, force: true });
      layers.push(await pushLayer(opts, dst, built));
      await rm(built.path, { force: true });
    }
    const config = imageConfig(source.config, opts.config, { diffIds: layers.map((l) => l.digest) });
    return pushImage(opts, dst, config, layers);
  });
}

interface ReadImage {
  readonly source: ImageSource;
  readonly manifest: { readonly layers: readonly Descriptor[] };
  readonly config: Record<string, unknown>;
}

// Resolves a tag or digest to one image manifest (an index picks the host platform) and reads its config.
async function readImage(source: ImageSource, what: 'base' | 'from'): Promise<ReadImage> {
  const subject = source.reference;
  let desc = await source.src.resolve(source.reference);
  if (desc.mediaType === OCI_INDEX || desc.mediaType === DOCKER_MANIFEST_LIST) {
    const list = parseImageIndex(await source.src.fetchBytes(desc), subject).manifests;
    desc = list.length === 1 ? list[0]! : resolvePlatform(list, { os: 'linux', architecture: hostPlatform().architecture }, `${what} image ${subject}`);
  }
  if (desc.mediaType !== OCI_MANIFEST && desc.mediaType !== DOCKER_MANIFEST) {
    throw new MosError({ code: 'IMAGE_INVALID', subject, message: `the ${what} reference is a ${desc.mediaType}, not an image manifest` });
  }
  const { config, layers } = parseImageManifest(await source.src.fetchBytes(desc), subject);
  if (layers.length === 0) throw new MosError({ code: 'IMAGE_INVALID', subject, message: `the ${what} image manifest has no layers` });
  return { source, manifest: { layers }, config: parseJson(await source.src.fetchBytes(config), `${subject}: config`) };
}

function parseJson(bytes: Uint8Array, subject: string): Record<string, unknown> {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'document is larger than 4 MiB' });
  try {
    const v: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new MosError({ code: 'IMAGE_INVALID', subject, message: 'not a JSON object' });
}

function defaultConfig(created: string): Record<string, unknown> {
  return { created, architecture: hostPlatform().architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

function diffIdsOf(config: Record<string, unknown> | undefined): string[] {
  const rootfs = config?.['rootfs'] as { diff_ids?: unknown } | undefined;
  return Array.isArray(rootfs?.diff_ids) ? (rootfs.diff_ids as string[]) : [];
}

// The new config: the old one with the overrides applied, the layers' digests as diff_ids (a squashfs
// layer is not a tar, so its "uncompressed" digest is its own) and one more history entry.
function imageConfig(
  old: Record<string, unknown>,
  set: ImageConfigOverrides | undefined,
  more: { diffIds: readonly string[]; history?: Record<string, string>; created?: string },
): Record<string, unknown> {
  const c = { ...((old['config'] as Record<string, unknown> | undefined) ?? {}) };
  if (set?.entrypoint) c['Entrypoint'] = [...set.entrypoint];
  if (set?.cmd) c['Cmd'] = [...set.cmd];
  if (set?.env) {
    const env = new Map<string, string>();
    for (const e of [...((c['Env'] as string[] | undefined) ?? []), ...set.env]) env.set(e.split('=')[0]!, e);
    c['Env'] = [...env.values()];
  }
  if (set?.workdir !== undefined) c['WorkingDir'] = set.workdir;
  if (set?.user !== undefined) c['User'] = set.user;
  if (set?.labels) c['Labels'] = { ...((c['Labels'] as Record<string, string> | undefined) ?? {}), ...set.labels };
  const history = Array.isArray(old['history']) ? [...(old['history'] as unknown[])] : [];
  if (more.history) history.push(more.history);
  return {
    ...old,
    ...(more.created !== undefined ? { created: more.created } : {}),
    config: c,
    rootfs: { type: 'layers', diff_ids: [...more.diffIds] },
    ...(history.length > 0 ? { history } : {}),
  };
}

function openTarget(dst: CommonOptions['dst']): Promise<ContentTarget> {
  return typeof dst === 'function' ? dst() : Promise.resolve(dst);
}

async function pushLayer(opts: CommonOptions, dst: ContentTarget, layer: LayerBuild): Promise<BuiltLayer> {
  const desc = layerDescriptor(layer);
  if (!(await dst.exists(desc, transfer(opts)))) await dst.pushBlob(desc, createReadStream(layer.path), transfer(opts));
  return { digest: layer.digest, size: layer.size, mediaType: layer.mediaType, rootHash: layer.rootHash, hashOffset: layer.hashOffset };
}

function layerDescriptor(l: BuiltLayer): Descriptor {
  // Both annotation names: current atomfs reads the first, Go mos's older atomfs only the second.
  return {
    mediaType: l.mediaType,
    digest: l.digest,
    size: l.size,
    annotations: { [VERITY_ROOT_HASH_ANNOTATION]: l.rootHash, [LEGACY_VERITY_ROOT_HASH_ANNOTATION]: l.rootHash },
  };
}

// Base layers are reused as they are.
async function copyLayers(src: ContentSource, layers: readonly Descriptor[], offsets: readonly number[], dst: ContentTarget, opts: CommonOptions): Promise<BuiltLayer[]> {
  const out: BuiltLayer[] = [];
  for (const [i, l] of layers.entries()) {
    if (!(await dst.exists(l, transfer(opts)))) await dst.pushBlob(l, src.fetchBlob(l, transfer(opts)), transfer(opts));
    const rootHash = l.annotations?.[VERITY_ROOT_HASH_ANNOTATION] ?? l.annotations?.[LEGACY_VERITY_ROOT_HASH_ANNOTATION] ?? '';
    out.push({ digest: l.digest, size: l.size, mediaType: l.mediaType, rootHash, hashOffset: offsets[i]! });
  }
  return out;
}

async function pushImage(opts: CommonOptions, dst: ContentTarget, config: Record<string, unknown>, layers: readonly BuiltLayer[]): Promise<BuildImageResult> {
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDesc: Descriptor = { mediaType: OCI_CONFIG, digest: sha256Digest(configBytes), size: configBytes.byteLength };
  if (!(await dst.exists(configDesc, transfer(opts)))) await dst.pushBlob(configDesc, Readable.from([configBytes]), transfer(opts));
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: layers.map(layerDescriptor) };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const descriptor: Descriptor = { mediaType: OCI_MANIFEST, digest: sha256Digest(bytes), size: bytes.byteLength };
  await dst.pushManifest(descriptor, bytes, { ...transfer(opts), tag: opts.tag });
  return { descriptor, layers };
}

// Where a squashfs blob's verity data starts: its bytes_used rounded up to 4096.
async function hashOffsetOf(blob: string): Promise<number> {
  const fh = await open(blob, 'r');
  try {
    const head = Buffer.alloc(SQUASHFS_SUPERBLOCK_SIZE);
    await fh.read(head, 0, head.length, 0);
    return verityHashOffset(parseSquashfsSuperblock(head, blob));
  } finally {
    await fh.close();
  }
}

async function download(src: ContentSource, desc: Descriptor, path: string, opts: CommonOptions): Promise<string> {
  await pipeline(Readable.from(src.fetchBlob(desc, transfer(opts))), createWriteStream(path, { flags: 'wx' }));
  return path;
}

function transfer(opts: CommonOptions): { signal?: AbortSignal; onProgress?: OnProgress; log?: Logger } {
  return { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.log ? { log: opts.log } : {}) };
}

function layerOpts(opts: CommonOptions): { compression?: SquashfsCompression; signal?: AbortSignal; log?: Logger } {
  return { ...(opts.compression ? { compression: opts.compression } : {}), ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
}

function step(opts: CommonOptions, name: string, detail?: string): void {
  opts.onProgress?.({ kind: 'step', step: name, ...(detail !== undefined ? { detail } : {}) });
}

function checkTag(tag: string): void {
  if (!isTag(tag)) throw new MosError({ code: 'INPUT_INVALID', subject: tag, message: 'not a valid tag (A-Za-z0-9_ then A-Za-z0-9._-, at most 128)' });
}

async function checkDir(dir: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    throw fileError(e, dir, 'rootfs directory');
  }
  if (!isDir) throw new MosError({ code: 'INPUT_INVALID', subject: dir, message: 'rootfs is not a directory' });
}

function requireRoot(flag: string): void {
  if (process.getuid?.() !== 0) {
    throw new MosError({ code: 'HOST_PERMISSION', subject: flag, message: `${flag} needs root (file owners, device nodes and trusted.* xattrs)`, hint: 'run as root' });
  }
}

async function mkdirIn(parent: string, name: string): Promise<string> {
  const p = join(parent, name);
  await mkdir(p);
  return p;
}

// The work dir holds only plain files and directories (no mounts), so removing it recursively is safe.
async function withWorkDir<T>(parent: string | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(parent ?? tmpdir(), 'mosb-build-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
