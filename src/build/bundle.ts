import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { MosError } from '../base/index.js';
import { packageRoot } from './initrd.js';

/**
 * The bundle's entry: runs mosctl.cjs (downloader.cjs for the registry child) as a CommonJS module,
 * through the V8 code cache next to it when that cache was made by this node (V8 rejects a cache of
 * another version or flags; it then compiles).
 */
const LOADER = `#!/usr/bin/env node
// mosctl (bundled): runs mosctl.cjs through the V8 code cache mosctl.cjs.cache when it fits this node.
import { existsSync, readFileSync } from 'node:fs';
import { Module, createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
const dir = dirname(fileURLToPath(import.meta.url));
// \`mosctl __downloader\` (cmd/mosctl/downloader.ts DOWNLOADER_MODE) is the registry child: its own smaller
// bundle when shipped (mosctl.cjs runs that mode too, for an image that carries only mosctl.cjs).
const child = process.argv[2] === '__downloader' && existsSync(join(dir, 'downloader.cjs'));
const file = join(dir, child ? 'downloader.cjs' : 'mosctl.cjs');
let cachedData;
try { cachedData = readFileSync(file + '.cache'); } catch {}
// The same source string the cache was made from: the CommonJS wrapper around the file without its #! line.
// The file is ASCII (asciiOnly at build): read as latin1, V8 keeps it as a one-byte string.
const script = new Script(Module.wrap(readFileSync(file, 'latin1').replace(/^#!.*/, '')), { filename: file, cachedData });
const mod = new Module(file);
mod.filename = file;
script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, dir);
`;

// The code cache of mosctl.cjs as the loader compiles it, made after mosctl has run once: `status` on an
// empty root loads the machine code and fails (no system there), which compiles what a start-up of a
// machine command runs (module set-up, option parsing, error reporting), not only the top level. A
// cache made before anything runs holds only the eager top level, and V8 then compiles the rest on
// every start: in a TCG guest that saved a second of every `mosctl status`. `--predictable` makes V8
// write the same bytes on every build (the file name is fixed too), and a plain node of the same
// version accepts the cache.
async function makeCodeCache(file: string): Promise<void> {
  const maker = join(dirname(file), '.make-code-cache.cjs');
  const emptyRoot = await mkdtemp(join(tmpdir(), 'mosctl-code-cache-'));
  await writeFile(
    maker,
    [
      "const fs = require('fs'), path = require('path'), { Module, createRequire } = require('module'), { Script } = require('vm');",
      'const f = process.argv[2];',
      "const script = new Script(Module.wrap(fs.readFileSync(f, 'latin1').replace(/^#!.*/, '')), { filename: 'mosctl.cjs' });",
      "process.on('exit', () => fs.writeFileSync(f + '.cache', script.createCachedData()));",
      "process.argv = [process.argv[0], f, '--root', process.argv[3], 'status'];",
      'const mod = new Module(f);',
      'mod.filename = f;',
      'script.runInThisContext().call(mod.exports, mod.exports, createRequire(f), mod, f, path.dirname(f));',
      '',
    ].join('\n'),
  );
  try {
    // The status fails (exit 6, nothing installed): its message is expected and not shown.
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, ['--predictable', maker, file, emptyRoot], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } }, (err) =>
        err && (err as { code?: unknown }).code !== 6 ? reject(err) : resolve(),
      );
    });
  } finally {
    await rm(maker, { force: true });
    await rm(emptyRoot, { recursive: true, force: true });
  }
}

/**
 * Escapes every non-ASCII character of the bundle (esbuild leaves some in regular expression literals)
 * as `\\uXXXX`, which means the same in strings, templates, regular expressions and identifiers. One
 * such character made V8 hold the whole 2 MB source as a two-byte string on every start.
 */
async function asciiOnly(file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) await writeFile(file, ascii);
}

/**
 * The code cache of a bundle's top level, compiled and not run (the downloader child needs its IPC
 * channel to run): its start-up functions compile lazily, the rest comes from the cache. The file name in
 * it is fixed, as for mosctl.cjs, so every build writes the same bytes.
 */
async function makeTopLevelCodeCache(file: string): Promise<void> {
  const script = [
    "const fs = require('fs'), { Module } = require('module'), { Script } = require('vm');",
    'const f = process.argv[1];',
    "const s = new Script(Module.wrap(fs.readFileSync(f, 'latin1').replace(/^#!.*/, '')), { filename: 'downloader.cjs' });",
    "fs.writeFileSync(f + '.cache', s.createCachedData());",
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, ['--predictable', '-e', script, file], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } }, (err) => (err ? reject(err) : resolve()));
  });
}

export interface BundleResult {
  readonly dir: string;
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * `mosb initrd bundle DIR`: mosctl as one file (`DIR/mosctl.cjs`, esbuild, every JavaScript dependency
 * inlined) for the system's node, its entry `DIR/mosctl.mjs` (loads it through the V8 code cache
 * `DIR/mosctl.cjs.cache`), and the one native addon it loads (fs-ext's flock binding) under
 * `DIR/node_modules/fs-ext`. `--version` works: the version is inlined at build time. The output
 * depends only on the sources, the esbuild version and the node that builds it.
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
    // CommonJS, not ESM: V8 can load a classic script from a code cache (vm.Script cachedData), which
    // halves mosctl's start-up; an ES module is compiled from source on every start in node 20.
    const common: import('esbuild').BuildOptions = {
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      minify: true,
      keepNames: true,
      legalComments: 'none',
      logLevel: 'warning',
      // The native addon stays a file (loaded with createRequire next to the bundle).
      external: ['fs-ext'],
      define: { 'import.meta.url': '__mosctl_import_meta_url' },
      banner: { js: "var __mosctl_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    };
    await esbuild.build({ ...common, entryPoints: [join(root, 'cmd', 'mosctl.ts')], outfile: join(tmp, 'mosctl.cjs') });
    // The downloader child (`mosctl __downloader`) alone: a quarter of the size, so the child that the
    // registry commands wait for starts sooner (the loader picks it by the mode argument).
    await esbuild.build({ ...common, entryPoints: [join(root, 'src', 'oci', 'downloader', 'child-main.ts')], outfile: join(tmp, 'downloader.cjs') });
    await asciiOnly(join(tmp, 'mosctl.cjs'));
    await asciiOnly(join(tmp, 'downloader.cjs'));
    // The package's `bin`: executable, like the ESM entry tsc writes with its #! line.
    await writeFile(join(tmp, 'mosctl.mjs'), LOADER, { mode: 0o755 });
    const req = createRequire(join(root, 'package.json'));
    const fsExt = dirname(req.resolve('fs-ext/package.json'));
    for (const f of ['package.json', 'fs-ext.js', 'build/Release/fs_ext.node']) {
      await mkdir(dirname(join(tmp, 'node_modules', 'fs-ext', f)), { recursive: true });
      await copyFile(join(fsExt, f), join(tmp, 'node_modules', 'fs-ext', f));
    }
    await makeCodeCache(join(tmp, 'mosctl.cjs'));
    await makeTopLevelCodeCache(join(tmp, 'downloader.cjs'));
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (e instanceof MosError) throw e;
    throw new MosError({ code: 'HOST_EXEC_FAILED', subject: 'esbuild', message: `bundling mosctl failed: ${(e as Error).message}`, cause: e });
  }
  const file = join(dir, 'mosctl.mjs');
  const body = await readFile(join(dir, 'mosctl.cjs'));
  return { dir, file, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
}
