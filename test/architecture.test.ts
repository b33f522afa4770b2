import { t } from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The dependency picture (STYLE.md §2): cmd -> system -> leaves -> squashfs -> host -> base. Leaves never
// import each other; cross-folder imports go through index.ts.
const top = fileURLToPath(new URL('..', import.meta.url));
const src = join(top, 'src');
const LEAVES = ['manifest', 'trust', 'oci', 'config', 'atomfs', 'runtime', 'api'];
const ALLOWED: Record<string, readonly string[]> = {
  base: [],
  host: ['base'],
  squashfs: ['base', 'host'],
  ...Object.fromEntries(LEAVES.map((l) => [l, ['base', 'host', 'squashfs']])),
  system: ['base', 'host', 'squashfs', ...LEAVES],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

t.test('src imports point one way, through index.ts', async (t) => {
  const bad: string[] = [];
  for (const file of files(src)) {
    const from = relative(src, file).split('/')[0]!;
    const allowed = ALLOWED[from];
    if (!allowed) {
      bad.push(`${relative(top, file)}: folder src/${from} is not in the architecture picture`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), m[1]!);
      const rel = relative(src, target);
      if (rel.startsWith('..')) {
        bad.push(`${relative(top, file)}: imports ${m[1]} outside src/`);
        continue;
      }
      const to = rel.split('/')[0]!;
      if (to === from) continue;
      if (!allowed.includes(to)) bad.push(`${relative(top, file)}: src/${from} may not import src/${to}`);
      else if (rel !== `${to}/index.js`) bad.push(`${relative(top, file)}: import src/${to} through its index.ts, not ${rel}`);
    }
  }
  t.same(bad, [], 'no upward, sideways or deep cross-folder imports');
});
