import { readdir, readFile } from 'node:fs/promises';
import { exec } from './exec.js';

/** A bound loop device and the file behind it (from /sys/block/loopN/loop). */
export interface LoopDevice {
  /** `/dev/loopN` */
  readonly path: string;
  /** `major:minor`, as in mountinfo's device field. */
  readonly device: string;
  /** Backing file as the kernel reports it, without a trailing ` (deleted)`. */
  readonly backingFile: string;
  readonly offset: number;
  readonly sizeLimit: number;
  readonly autoclear: boolean;
}

async function readSys(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Lists the loop devices that currently have a backing file (unbound ones are left out). */
export async function listLoopDevices(): Promise<LoopDevice[]> {
  let names: string[];
  try {
    names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  const out: LoopDevice[] = [];
  for (const name of names) {
    const l = await loopDevice(`/dev/${name}`);
    if (l !== undefined) out.push(l);
  }
  return out;
}

/** One loop device's binding, or undefined when it is unbound or not a loop device. */
export async function loopDevice(path: string): Promise<LoopDevice | undefined> {
  const name = path.replace(/^\/dev\//, '');
  if (!/^loop\d+$/.test(name)) return undefined;
  const dir = `/sys/block/${name}`;
  const backing = await readSys(`${dir}/loop/backing_file`);
  if (backing === undefined) return undefined; // no loop/ directory: the device is unbound
  return {
    path: `/dev/${name}`,
    device: (await readSys(`${dir}/dev`)) ?? '',
    backingFile: backing.replace(/ \(deleted\)$/, ''),
    offset: Number((await readSys(`${dir}/loop/offset`)) ?? 0),
    sizeLimit: Number((await readSys(`${dir}/loop/sizelimit`)) ?? 0),
    autoclear: (await readSys(`${dir}/loop/autoclear`)) === '1',
  };
}

/** Detaches a loop device (`losetup -d`); throws HOST_EXEC_FAILED when losetup refuses. */
export async function detachLoop(path: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
  await exec(['losetup', '-d', path], { signal: opts.signal });
}
