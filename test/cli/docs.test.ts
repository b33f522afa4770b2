import { t } from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { hasProgram, tempDir } from '../support/env.js';

// Shell completion and man pages are generated from the commander definitions: every command and
// every visible flag of both CLIs must be offered by bash completion and documented in the man page.

/** What bash completion offers for the words typed so far (the last one being completed). */
function complete(script: string, words: string[]): string[] {
  const line = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['-c', `source '${script}'; COMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _${words[0]}_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

for (const cli of ['mosctl', 'mosb'] as const) {
  t.test(`${cli}: completion and man page cover every command and flag`, { skip: hasProgram('bash') ? false : 'needs bash' }, async (t) => {
    const dir = tempDir(t);
    const comp = await runCli(cli, ['completion', 'bash']);
    t.equal(comp.code, 0, comp.stderr);
    const script = join(dir, `${cli}.bash`);
    writeFileSync(script, comp.stdout);
    t.equal(spawnSync('bash', ['-n', script]).status, 0, 'the bash script parses');
    // The command tree, from --help of each level (what commander knows).
    // Each level's --help once: both the command list and the flags come from it.
    const helps = new Map<string, Promise<{ stdout: string }>>();
    const help = (path: string[]) => {
      const key = path.join(' ');
      if (!helps.has(key)) helps.set(key, runCli(cli, [...path, '--help']));
      return helps.get(key)!;
    };
    const commands = async (path: string[]): Promise<string[]> => {
      const h = await help(path);
      const block = h.stdout.split(/^Commands:$/m)[1] ?? '';
      return [...block.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    };
    const flags = async (path: string[]): Promise<string[]> => {
      const h = await help(path);
      const block = (h.stdout.split(/^Options:$/m)[1] ?? '').split(/^Commands:$/m)[0]!;
      return [...block.matchAll(/^ {2}(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');
    };
    const top = await commands([]);
    t.ok(top.includes('completion') && top.includes('man'), 'the programs list completion and man');
    t.same(complete(script, [cli, '']).sort(), [...top].sort(), 'every top-level command is offered');
    const man = await runCli(cli, ['man']);
    t.equal(man.code, 0, man.stderr);
    const lint = spawnSync('groff', ['-man', '-ww', '-z'], { input: man.stdout, encoding: 'utf8' });
    t.equal(lint.stderr, '', 'groff finds nothing to warn about');
    const text = spawnSync('man', ['-l', '-P', 'cat', '-'], { input: man.stdout, encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } }).stdout;
    t.match(text, new RegExp(`^NAME\\n +${cli} - `, 'm'));
    let checked = 0;
    const visit = async (path: string[]) => {
      const subs = await commands(path);
      if (subs.length > 0) {
        t.same(complete(script, [cli, ...path, '']).sort(), [...subs].sort(), `${[cli, ...path].join(' ')}: its subcommands are offered`);
        for (const s of subs) await visit([...path, s]);
        return;
      }
      const want = await flags(path);
      const offered = complete(script, [cli, ...path, '--']);
      const missing = want.filter((f) => !offered.includes(f));
      t.same(missing, [], `${[cli, ...path].join(' ')}: every flag is completed`);
      t.ok(text.includes(`${cli} ${path.join(' ')}`), `${[cli, ...path].join(' ')} has a section in the man page`);
      const undocumented = want.filter((f) => !text.includes(f));
      t.same(undocumented, [], `${[cli, ...path].join(' ')}: every flag is in the man page`);
      checked++;
    };
    for (const c of top) await visit([c]);
    t.ok(checked >= (cli === 'mosctl' ? 25 : 8), `${checked} commands checked`);
    t.same(complete(script, [cli, ...(cli === 'mosctl' ? ['--root'] : ['image', 'build', '--workdir']), dir.slice(0, -3)]), [dir], 'a file argument completes paths');
    const bad = await runCli(cli, ['completion', 'tcsh']);
    t.equal(bad.code, 2);
    t.match(bad.stderr, /"tcsh" is not bash, zsh or fish/);
    const fish = await runCli(cli, ['completion', 'fish']);
    t.match(fish.stdout, new RegExp(`^complete -c ${cli} -n __fish_use_subcommand -a ${top[0]} -d `, 'm'));
    const zsh = await runCli(cli, ['completion', 'zsh']);
    t.match(zsh.stdout, new RegExp(`^#compdef ${cli}\\n`));
  });
}
