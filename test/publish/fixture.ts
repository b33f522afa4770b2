import { t as root } from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { openLayout, type Descriptor } from '../../src/oci/index.js';
import { buildImage, createKeyset, createProject, type ProjectPaths } from '../../src/build/index.js';

const execFileP = promisify(execFile);

/** Programs the publish tests drive. */
export const PROGRAMS = ['docker-registry', 'skopeo', 'mksquashfs', 'veritysetup', 'curl', 'openssl', 'jq'] as const;

/** Two tiny squashfs images in one layout (`app-1.0` is fs-only content), tagged by name. */
export interface Images {
  readonly layout: string;
  readonly hostfs: Descriptor;
  readonly app: Descriptor;
}

/** Builds `hostfs-1.0` and `app-1.0` from small trees into `<dir>/images` with the library builder. */
export async function buildImages(dir: string): Promise<Images> {
  const layout = join(dir, 'images');
  const trees = join(dir, 'trees');
  await mkdir(join(trees, 'hostfs', 'etc'), { recursive: true });
  await writeFile(join(trees, 'hostfs', 'etc', 'os-release'), 'ID=publish-test\nVERSION_ID=1.0\n');
  await mkdir(join(trees, 'app', 'share'), { recursive: true });
  await writeFile(join(trees, 'app', 'share', 'data.txt'), 'fs-only data\n');
  const store = await openLayout(layout, { create: true });
  const hostfs = await buildImage({ rootfs: join(trees, 'hostfs'), dst: store, tag: 'hostfs-1.0', workDir: dir });
  const app = await buildImage({ rootfs: join(trees, 'app'), dst: store, tag: 'app-1.0', workDir: dir });
  return { layout, hostfs: hostfs.descriptor, app: app.descriptor };
}

/** A keyset `snakeoil` with project `default` under `<dir>/xdg` (mos's layout). */
export async function makeProject(dir: string): Promise<{ dataHome: string; paths: ProjectPaths }> {
  const dataHome = join(dir, 'xdg');
  await createKeyset({ name: 'snakeoil', dataHome });
  const paths = await createProject({ keyset: 'snakeoil', project: 'default', dataHome });
  return { dataHome, paths };
}

let sharedDir: Promise<string> | undefined;
let images: Promise<Images> | undefined;
let project: Promise<{ dataHome: string; paths: ProjectPaths }> | undefined;

// One temp dir per test file for what its tests only read, removed when the file's tests end.
function fileDir(): Promise<string> {
  sharedDir ??= mkdtemp(join(tmpdir(), 'mosctl-publish-')).then((d) => {
    root.teardown(() => rm(d, { recursive: true, force: true }));
    return d;
  });
  return sharedDir;
}

/** {@link buildImages} once per test file: publishing only reads the layout. */
export function sharedImages(): Promise<Images> {
  images ??= fileDir().then((d) => buildImages(join(d, 'img')));
  return images;
}

/** {@link makeProject} once per test file (two RSA-3072 keys): publishing only reads the keys. */
export function sharedProject(): Promise<{ dataHome: string; paths: ProjectPaths }> {
  project ??= fileDir().then((d) => makeProject(join(d, 'project')));
  return project;
}

/** manifest.yaml text for the two images (hostfs + an fs-only target), optionally with extra target lines. */
export function manifestYaml(images: Images, opts: { hostfsExtra?: string; appSource?: string } = {}): string {
  return [
    'version: 1',
    'product: de6c82c5-2e01-4c92-949b-a6545d30fc06',
    'update_type: complete',
    'targets:',
    '  - service_name: hostfs',
    `    source: oci:${images.layout}:hostfs-1.0`,
    '    version: 1.0.0',
    '    service_type: hostfs',
    '    network: { type: host }',
    ...(opts.hostfsExtra ? [opts.hostfsExtra] : []),
    '  - service_name: data',
    `    source: ${opts.appSource ?? `oci:${images.layout}:app-1.0`}`,
    '    version: 2.0.0',
    '    service_type: fs-only',
    '    network: { type: none }',
    '',
  ].join('\n');
}

/** GET with curl (an independent HTTP client); the body as bytes. */
export async function curl(url: string, accept?: string): Promise<Buffer> {
  const { stdout } = await execFileP('curl', ['-fsS', ...(accept ? ['-H', `Accept: ${accept}`] : []), url], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** GET a JSON document with curl. */
export async function curlJson<T = Record<string, unknown>>(url: string, accept?: string): Promise<T> {
  return JSON.parse((await curl(url, accept)).toString('utf8')) as T;
}

/** The repositories a registry holds (`/v2/_catalog`). */
export async function catalog(host: string): Promise<string[]> {
  return (await curlJson<{ repositories: string[] | null }>(`http://${host}/v2/_catalog`)).repositories ?? [];
}

