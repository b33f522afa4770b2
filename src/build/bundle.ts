import { copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { MosError } from '../base/index.js';
import { packageRoot } from './initrd.js';

export interface BundleResult {
  readonly dir: string;
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * `mosb initrd bundle DIR`: mosctl as one ES module (`DIR/mosctl.mjs`, esbuild, every JavaScript
 * dependency inlined) for the system's node, plus the one native addon it loads (fs-ext's flock binding)
 * under `DIR/node_modules/fs-ext`. `--version` works: the version is inlined at build time. The output
 * depends only on the sources and the esbuild version.
 */
export async function bundleMosctl(dir: string): Promise<BundleResult> {
  const root = packageRoot();
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new MosError({ code: 'HOST_TOOL_MISSING', subject: 'esbuild', message: `cannot load esbuild: ${(e as Error).message}`, hint: 'npm ci installs it' });
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: [join(root, 'cmd', 'mosctl.ts')],
      outfile: join(tmp, 'mosctl.mjs'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      minify: true,
      keepNames: true,
      legalComments: 'none',
      logLevel: 'warning',
      // The native addon stays a file; CommonJS dependencies inside an ES module need a require.
      external: ['fs-ext'],
      banner: { js: "import { createRequire as __mosctlRequire } from 'node:module'; const require = __mosctlRequire(import.meta.url);" },
    });
    const req = createRequire(join(root, 'package.json'));
    const fsExt = dirname(req.resolve('fs-ext/package.json'));
    for (const f of ['package.json', 'fs-ext.js', 'build/Release/fs_ext.node']) {
      await mkdir(dirname(join(tmp, 'node_modules', 'fs-ext', f)), { recursive: true });
      await copyFile(join(fsExt, f), join(tmp, 'node_modules', 'fs-ext', f));
    }
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_EXEC_FAILED', subject: 'esbuild', message: `bundling mosctl failed: ${(e as Error).message}`, cause: e });
  }
  const file = join(dir, 'mosctl.mjs');
  const body = await readFile(file);
  return { dir, file, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
}
