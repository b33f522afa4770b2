import { t } from 'tap';
import { argvOf } from '../../cmd/shared/flags.js';

// --entrypoint and --cmd: JSON arrays as they are, anything else split into shell words.
const cases: { input: string; want: string[] }[] = [
  { input: '/bin/sh -c "echo hi"', want: ['/bin/sh', '-c', 'echo hi'] },
  { input: "/bin/sh -c 'echo $HOME'", want: ['/bin/sh', '-c', 'echo $HOME'] },
  { input: '/usr/sbin/httpd -f -p 80', want: ['/usr/sbin/httpd', '-f', '-p', '80'] },
  { input: 'echo a\\ b $PATH', want: ['echo', 'a b', '$PATH'] },
  { input: '["/bin/sh","-c","echo hi"]', want: ['/bin/sh', '-c', 'echo hi'] },
  { input: '', want: [] },
];
for (const c of cases) t.strictSame(argvOf(c.input, '--entrypoint'), c.want, c.input);

t.test('refused: shell operators and malformed JSON arrays, naming the flag', async (t) => {
  for (const bad of ['a | b', 'a; b', 'a > out', '["a", 1]', '[not json']) {
    t.throws(() => argvOf(bad, '--cmd'), { code: 'INPUT_INVALID', subject: '--cmd' }, bad);
  }
});
