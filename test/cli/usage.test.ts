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
    t.same(lines, [`${cli}: unknown option '--bogus-flag'`, `hint: ${cli} --help shows the usage`], 'one line and a hint, like every other error');
    const sub = await runCli(cli, ['frobnicate']);
    t.equal(sub.code, 2);
    t.match(sub.stderr, new RegExp(`^${cli}: unknown command 'frobnicate'\nhint: `));
    const json = await runCli(cli, ['--json', '--bogus-flag']);
    t.strictSame(json.json, { error: { code: 'USAGE', message: "unknown option '--bogus-flag'", hint: `${cli} --help shows the usage`, retryable: false } });
    // The subject names the subcommand whose line was wrong, as for every other error.
    const deep = await runCli(cli, ['--json', ...(cli === 'mosctl' ? ['install'] : ['image', 'copy']), '--bogus-flag', 'a', 'b']);
    const subject = cli === 'mosctl' ? 'install' : 'image copy';
    t.strictSame(deep.json, { error: { code: 'USAGE', message: "unknown option '--bogus-flag'", subject, hint: `${cli} ${subject} --help shows the usage`, retryable: false } });
    t.match(deep.stderr, new RegExp(`^${cli}: ${subject}: unknown option '--bogus-flag'\nhint: ${cli} ${subject} --help shows the usage\n$`));
    const help = await runCli(cli, ['--help']);
    t.equal(help.code, 0);
    t.match(help.stdout, /^Usage: /);
    const version = await runCli(cli, ['--version']);
    t.equal(version.code, 0);
    t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
}
