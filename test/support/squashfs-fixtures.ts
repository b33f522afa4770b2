import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseMountInfo } from '../../src/host/index.js';
import { LEGACY_VERITY_ROOT_HASH_ANNOTATION, SQUASHFS_GZIP_MEDIA_TYPE, VERITY_ROOT_HASH_ANNOTATION } from '../../src/squashfs/index.js';
import type { LayerInput } from '../../src/atomfs/index.js';
import type { Digest } from '../../src/base/index.js';

/** A file's content, a directory, a symlink, or an overlay whiteout (char device 0:0: the path is deleted). */
export type TreeEntry = string | { readonly dir: true } | { readonly symlink: string } | { readonly whiteout: true };

/** A test layer: what atomfs takes, plus the facts the test may want to tamper with. */
export interface TestLayer extends LayerInput {
  readonly rootHash: string | undefined;
  /** Bytes of squashfs before the verity area. */
  readonly squashfsSize: number;
}

/** A scratch system root for atomfs tests. */
export interface AtomfsEnv {
  readonly root: string;
  readonly scratch: string;
  /** `<root>/atomfs-store/mos/blobs/sha256`, where layers land named by their digest. */
  readonly blobs: string;
}

function sh(argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Mounts at or below `dir`, deepest first. */
export function mountsBelow(dir: string): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((e) => e.mountPoint)
    .filter((p) => p === dir || p.startsWith(dir + '/'))
    .reverse();
}

/** Bound loop devices whose backing file lies below `dir`. */
export function loopsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync('/sys/block').filter((x) => x.startsWith('loop'))) {
    try {
      const f = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
      if (f.startsWith(dir + '/')) out.push(`/dev/${n}`);
    } catch {
      // unbound
    }
  }
  return out;
}

/**
 * A fresh root dir with teardown registered at once: every mount below it is unmounted (deepest first),
 * loop devices over its files are detached, and only then is the tree removed.
 */
export function atomfsEnv(t: Test): AtomfsEnv {
  const root = mkdtempSync(join(tmpdir(), 'mosctl-atomfs-'));
  t.teardown(() => {
    for (let i = 0; i < 3; i++) for (const m of mountsBelow(root)) sh(['umount', m]);
    for (const l of loopsBelow(root)) sh(['losetup', '-d', l]);
    if (mountsBelow(root).length === 0) rmSync(root, { recursive: true, force: true });
  });
  const blobs = join(root, 'atomfs-store', 'mos', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  return { root, scratch: join(root, 'scratch-writes'), blobs };
}

/** Options of {@link buildLayer}. */
export interface BuildLayerOptions {
  readonly files: Readonly<Record<string, TreeEntry>>;
  /** Append dm-verity data and annotate the root hash; default true. */
  readonly verity?: boolean;
  /** Annotate with the old stacker name; default false. */
  readonly legacyAnnotation?: boolean;
}

/** Builds a squashfs layer blob (mksquashfs, gzip for speed; + `veritysetup format` appended) into `env.blobs`. Needs root for whiteouts. */
export function buildLayer(env: AtomfsEnv, opts: BuildLayerOptions): TestLayer {
  const work = mkdtempSync(join(env.root, 'layer-'));
  try {
    const tree = join(work, 'tree');
    mkdirSync(tree);
    for (const [rel, entry] of Object.entries(opts.files)) {
      const p = join(tree, rel);
      mkdirSync(dirname(p), { recursive: true });
      if (typeof entry === 'string') writeFileSync(p, entry);
      else if ('dir' in entry) mkdirSync(p, { recursive: true });
      else if ('symlink' in entry) symlinkSync(entry.symlink, p);
      else sh(['mknod', p, 'c', '0', '0']);
    }
    const blob = join(work, 'blob');
    sh(['mksquashfs', tree, blob, '-comp', 'gzip', '-noappend', '-quiet', '-no-progress']);
    const squashfsSize = statSync(blob).size; // padded to 4096 by mksquashfs
    let rootHash: string | undefined;
    if (opts.verity ?? true) {
      const rh = join(work, 'roothash');
      sh(['veritysetup', 'format', blob, blob, `--hash-offset=${squashfsSize}`, `--data-blocks=${squashfsSize / 4096}`, `--root-hash-file=${rh}`]);
      rootHash = readFileSync(rh, 'utf8').trim();
    }
    const hex = createHash('sha256').update(readFileSync(blob)).digest('hex');
    const path = join(env.blobs, hex);
    renameSync(blob, path);
    const annotations = rootHash === undefined ? undefined : { [opts.legacyAnnotation ? LEGACY_VERITY_ROOT_HASH_ANNOTATION : VERITY_ROOT_HASH_ANNOTATION]: rootHash };
    return { path, digest: `sha256:${hex}` as Digest, mediaType: SQUASHFS_GZIP_MEDIA_TYPE, ...(annotations ? { annotations } : {}), rootHash, squashfsSize };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
