import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Mounts squashfs layer files (bottom first) with loop,ro and stacks them with a read-only overlay;
 * returns the merged directory. One teardown unmounts in reverse order, then rmdirs each mountpoint
 * (they live outside t.testdir, whose removal runs first and must never walk a mount).
 */
export function mountStack(t: Test, layers: readonly string[], opts: { userxattr: boolean }): string {
  const top = mkdtempSync(join(tmpdir(), 'mosb-stack-'));
  const mounted: string[] = [];
  const made: string[] = [top];
  t.teardown(() => {
    for (const m of mounted.reverse()) execFileSync('umount', [m]);
    for (const d of made.reverse()) rmdirSync(d);
  });
  const lowers: string[] = [];
  for (const [i, file] of layers.entries()) {
    const mnt = join(top, `l${i}`);
    mkdirSync(mnt);
    made.push(mnt);
    execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', file, mnt]);
    mounted.push(mnt);
    lowers.unshift(mnt);
  }
  // Overlay needs two lower dirs without an upper one: an empty one stands in (as atomfs does).
  if (lowers.length === 1) {
    const empty = join(top, 'empty');
    mkdirSync(empty);
    made.push(empty);
    lowers.push(empty);
  }
  const merged = join(top, 'merged');
  mkdirSync(merged);
  made.push(merged);
  const options = `lowerdir=${lowers.join(':')}${opts.userxattr ? ',userxattr' : ''}`;
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', options, merged]);
  mounted.push(merged);
  return merged;
}

/** One line per entry under `root`: path, type+mode, owner, and content hash / link target / device; times ignored. */
export function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const p = join(root, r);
      const st = lstatSync(p);
      let what = '';
      if (st.isFile()) what = createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16);
      else if (st.isSymbolicLink()) what = `-> ${readlinkSync(p)}`;
      else if (st.isCharacterDevice() || st.isBlockDevice()) what = `dev ${st.rdev}`;
      out.push(`${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** The blob file of `digest` in an OCI layout. */
export function blobFile(layout: string, digest: string): string {
  return join(layout, 'blobs', ...digest.split(':'));
}

/** A layout's manifest (by tag) and config, read with skopeo: an independent reader of what we wrote. */
export function inspectLayout(layout: string, tag: string): { manifest: any; config: any } {
  const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:${tag}`]).toString());
  const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', `oci:${layout}:${tag}`]).toString());
  return { manifest, config };
}

/** Every blob file name in a layout (to check nothing was written). */
export function blobNames(layout: string): string[] {
  try {
    return readdirSync(join(layout, 'blobs', 'sha256')).sort();
  } catch {
    return [];
  }
}
