import { lstat, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { MosError } from '../base/index.js';

const MAX_HOPS = 16;

/**
 * True when `path` names an existing non-directory inside the container root `rootfs`, following
 * symlinks the way the container will see them (absolute targets resolve inside `rootfs`, never on
 * the host). A bare command name is looked up in `PATH` from the image env.
 */
export async function rootfsHasExecutable(rootfs: string, command: string, env: readonly string[]): Promise<boolean> {
  if (command.includes('/')) return resolveInRoot(rootfs, posix.resolve('/', command));
  const pathVar = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of pathVar.split(':').filter(Boolean)) {
    if (await resolveInRoot(rootfs, posix.join(posix.resolve('/', dir), command))) return true;
  }
  return false;
}

async function resolveInRoot(rootfs: string, inside: string): Promise<boolean> {
  let p = inside;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    let st;
    try {
      st = await lstat(rootfs + p);
    } catch {
      return false;
    }
    if (!st.isSymbolicLink()) return !st.isDirectory();
    const target = await readlink(rootfs + p);
    p = posix.resolve(posix.dirname(p), target);
  }
  return false;
}

/** Throws IMAGE_INVALID naming the target when its command is not in its root filesystem. */
export async function checkCommand(rootfs: string, command: readonly string[], env: readonly string[], target: string): Promise<void> {
  const cmd = command[0];
  if (cmd !== undefined && !(await rootfsHasExecutable(rootfs, cmd, env))) {
    throw new MosError({
      code: 'IMAGE_INVALID',
      subject: `target ${target}: Entrypoint/Cmd`,
      message: `${cmd} does not exist in the image`,
      hint: 'fix the image config (mosb image build --entrypoint/--cmd) and publish again',
    });
  }
}
