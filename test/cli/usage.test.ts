import { t } from 'tap';
import { runCli } from '../support/cli.js';

// CLI habits: a usage error is one line and a pointer to --help (never the whole help page), exit 2;
// a bare command with subcommands is a usage error too; --help and --version answer with exit 0.
for (const cli of ['mosctl', 'mosb'] as const) {
  t.test(`${cli}: usage errors are short and exit 2`, async (t) => {
    const bare = await runCli(cli, []);
    t.equal(bare.code, 2, 'bare command');
    const flag = await runCli(cli, ['--bogus-flag']);
    t.equal(flag.code, 2);
    const lines = flag.stderr.trim().split('\n');
    t.same(lines, ["error: unknown option '--bogus-flag'", 'hint: add --help to the command for its usage'], 'one line and a hint');
    const sub = await runCli(cli, ['frobnicate']);
    t.equal(sub.code, 2);
    t.match(sub.stderr, /^error: unknown command 'frobnicate'\nhint: /);
    const json = await runCli(cli, ['--json', '--bogus-flag']);
    t.match(json.json, { error: { code: 'USAGE', message: "unknown option '--bogus-flag'" } });
    const help = await runCli(cli, ['--help']);
    t.equal(help.code, 0);
    t.match(help.stdout, /^Usage: /);
    const version = await runCli(cli, ['--version']);
    t.equal(version.code, 0);
    t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
}
