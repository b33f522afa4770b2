import { t } from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The dependency picture (STYLE.md §2, README "Layout"). Two products, mosctl (src/machine) and mosb
// (src/build), share the concern folders and never import each other; src/protocol holds what both
// speak. Leaves never import each other; cross-folder imports go through index.ts. cmd/ is thin:
// cmd/mosctl/* reaches only src/machine, cmd/mosb/* only src/build (plus src/base and cmd/shared),
// with no file system or process access of its own and no literal exit codes.
const top = fileURLToPath(new URL('..', import.meta.url));
const LEAVES = ['manifest', 'trust', 'oci', 'config', 'atomfs', 'runtime', 'api'];
const BELOW_PRODUCTS = ['base', 'host', 'squashfs', ...LEAVES, 'protocol'];
const ALLOWED: Record<string, readonly string[]> = {
  'src/base': [],
  'src/host': ['src/base'],
  'src/squashfs': ['src/base', 'src/host'],
  ...Object.fromEntries(LEAVES.map((l) => [`src/${l}`, ['src/base', 'src/host', 'src/squashfs']])),
  'src/protocol': ['src/base', 'src/host', 'src/squashfs', ...LEAVES.map((l) => `src/${l}`)],
  'src/machine': BELOW_PRODUCTS.map((f) => `src/${f}`),
  'src/build': BELOW_PRODUCTS.map((f) => `src/${f}`),
  // The upgrade API: a front door over src/machine's operation engine.
  'src/serve': [...BELOW_PRODUCTS.map((f) => `src/${f}`), 'src/machine'],
  'cmd/shared': ['src/base', 'package.json'],
  'cmd/mosctl': ['src/base', 'src/machine', 'src/serve', 'cmd/shared'],
  'cmd/mosb': ['src/base', 'src/build', 'cmd/shared'],
  'cmd/mosctl.ts': ['cmd/mosctl', 'cmd/shared'],
  'cmd/mosb.ts': ['cmd/mosb', 'cmd/shared'],
};
// Node modules cmd may not use: reading files, spawning and mounting belong in src/.
const CMD_FORBIDDEN_BUILTINS = /^node:(fs|fs\/promises|child_process|net|http|https|crypto)$/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

/** `src/<folder>`, `cmd/<folder>` or `cmd/<entry>.ts` of a path relative to the top. */
function unitOf(rel: string): string {
  const [head, second] = rel.split('/');
  return second !== undefined && (head === 'src' || head === 'cmd') ? `${head}/${second}` : rel;
}

/** Every module specifier a file imports, static and dynamic. */
function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

t.test('imports point one way: products never meet, leaves never meet, cmd stays thin', async (t) => {
  const all = [...files(join(top, 'src')), ...files(join(top, 'cmd'))];
  t.ok(all.length > 50, `read ${all.length} files`);
  t.same(all.flatMap((f) => check(f, readFileSync(f, 'utf8'))), [], 'no upward, sideways or deep imports');
});

t.test('the checker catches what it should', async (t) => {
  // A check that cannot fail proves nothing: feed it the edges it must refuse.
  const probe = (from: string, text: string) => check(join(top, from), text);
  t.match(probe('src/machine/x.ts', "import { a } from '../build/index.js';"), [/src\/machine may not import src\/build/]);
  t.match(probe('src/build/x.ts', "const m = () => import('../machine/index.js');"), [/src\/build may not import src\/machine/]);
  t.match(probe('src/oci/x.ts', "import { a } from '../trust/index.js';"), [/src\/oci may not import src\/trust/]);
  t.match(probe('src/machine/x.ts', "import { a } from '../oci/layout/store.js';"), [/through its index\.ts/]);
  t.match(probe('cmd/mosb/x.ts', "import type { A } from '../../src/machine/index.js';"), [/cmd\/mosb may not import src\/machine/]);
  t.match(probe('cmd/mosctl/x.ts', "import { readFile } from 'node:fs/promises';"), [/cmd is thin/]);
  t.match(probe('cmd/mosctl/x.ts', 'return { exitCode: 9 };'), [/literal exit code/]);
  t.same(probe('cmd/mosctl/x.ts', "import { a } from '../../src/machine/index.js';"), []);
});

/** The problems of one file's imports (its text given) under the picture above. */
function check(file: string, text: string): string[] {
  const rel = relative(top, file);
  const from = unitOf(rel);
  const allowed = ALLOWED[from];
  if (!allowed) return [`${rel}: ${from} is not in the architecture picture`];
  const bad: string[] = [];
  for (const spec of specifiers(text)) {
    if (!spec.startsWith('.')) {
      if (from.startsWith('cmd') && CMD_FORBIDDEN_BUILTINS.test(spec)) bad.push(`${rel}: cmd is thin and may not import ${spec}`);
      continue;
    }
    const target = relative(top, resolve(dirname(file), spec));
    const to = unitOf(target);
    if (to === from) continue;
    if (!allowed.includes(to)) bad.push(`${rel}: ${from} may not import ${to}`);
    else if (to.startsWith('src/') && target !== `${to}/index.js`) bad.push(`${rel}: import ${to} through its index.ts, not ${target}`);
  }
  if (from.startsWith('cmd') && /exitCode\s*[:=]\s*[1-9]/.test(text)) bad.push(`${rel}: literal exit code (return a failure code; run.ts maps it)`);
  return bad;
}

t.test('no import cycles in src/ or cmd/', async (t) => {
  const graph = new Map<string, string[]>();
  for (const f of [...files(join(top, 'src')), ...files(join(top, 'cmd'))]) {
    const deps = specifiers(readFileSync(f, 'utf8'))
      .filter((s) => s.startsWith('.') && s.endsWith('.js'))
      .map((s) => resolve(dirname(f), s).replace(/\.js$/, '.ts'));
    graph.set(f, deps);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(top, p)).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  t.same(cycles, [], 'every module graph is acyclic');
});
