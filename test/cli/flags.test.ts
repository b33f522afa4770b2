import { t } from 'tap';
import { argvOf, byteRate, registryAccess } from '../../cmd/shared/flags.js';

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

t.test('registry limits: seconds and byte rates from flags, USAGE naming a bad one', async (t) => {
  t.strictSame(registryAccess({}), {}, 'no flag: the library defaults');
  t.strictSame(registryAccess({ stallTimeout: '0.4', registryTimeout: '2', minRate: '4K', requestDeadline: '600', retries: '0' }).limits, {
    requestTimeoutMs: 2000, stallTimeoutMs: 400, minBytesPerSecond: 4096, requestDeadlineMs: 600_000, retries: 0,
  });
  t.strictSame(registryAccess({ limitRate: '2M' }).limits, { maxBytesPerSecond: 2 * 1024 * 1024 }, '--limit-rate');
  for (const [s, want] of [['512', 512], ['0', 0], ['1M', 1048576], ['2KiB', 2048], ['3k/s', 3072], ['1G', 1024 ** 3]] as const) t.equal(byteRate(s, '--min-rate'), want, s);
  for (const bad of ['', 'fast', '-1', '1.5K', '4T', '1e3']) t.throws(() => byteRate(bad, '--min-rate'), { code: 'USAGE', subject: '--min-rate' }, JSON.stringify(bad));
  for (const [flags, subject] of [[{ stallTimeout: '0' }, '--stall-timeout'], [{ registryTimeout: 'x' }, '--registry-timeout'], [{ requestDeadline: '0.5' }, '--request-deadline'], [{ retries: '1000' }, '--retries']] as const) {
    t.throws(() => registryAccess(flags), { code: 'USAGE', subject }, subject);
  }
});
