import { t } from 'tap';
import { human } from '../../cmd/shared/format.js';
import { ProgressView, duration } from '../../cmd/shared/progress-view.js';

const MiB = 1024 * 1024;
const bar = (f: number, n: number) => '#'.repeat(Math.round(f * n)) + '-'.repeat(n - Math.round(f * n));

t.test('one line for the whole operation: item, bar, percent, sizes, rate, ETA, fitting the width', async (t) => {
  const v = new ProgressView(0);
  v.update({ kind: 'step', step: 'pull', detail: '2 targets' }, 0);
  t.match(v.line(80, 1500, bar), /^pull 2 targets  2s$/, 'before any blob: the step and its time');
  v.update({ kind: 'transfer', total: 200 * MiB, items: 2 }, 0);
  v.update({ kind: 'item', name: 'hostfs' }, 0);
  v.update({ kind: 'blob-done', digest: 'sha256:cfg', total: 50 * MiB, skipped: true }, 0);
  v.update({ kind: 'blob', digest: 'sha256:a', done: 0, total: 150 * MiB }, 0);
  v.update({ kind: 'blob', digest: 'sha256:a', done: 20 * MiB, total: 150 * MiB }, 2000);
  const line = v.line(80, 2000, bar);
  t.match(line, /^hostfs #+-+ +35%  70 MiB\/200 MiB  10 MiB\/s  ETA 13s$/, line);
  t.equal(line.length, 79, 'the bar takes the room left at 80 columns');
  for (const w of [20, 40, 60, 80, 132, 300]) t.ok(v.line(w, 2000, bar).length <= w - 1, `fits ${w} columns`);
  t.notMatch(v.line(40, 2000, bar), /#/, 'too narrow for a bar: the figures stay');
  t.equal(v.plain(2000), 'pull: hostfs: 70 MiB/200 MiB (35%), 10 MiB/s, ETA 13s');
  t.equal(v.rate(2000), 10 * MiB, 'skipped blobs count as done, not as speed');
});

t.test('without an announced total: bytes of the blobs seen; a remote follow by target label', async (t) => {
  const v = new ProgressView(0);
  v.update({ kind: 'blob', digest: 'web', done: 5 * MiB, total: 10 * MiB, label: 'web' }, 1000);
  t.match(v.line(80, 1000, bar), /^web  5 MiB of 10 MiB$/);
  const long = new ProgressView(0);
  long.update({ kind: 'item', name: 'a-very-long-target-name-that-goes-on-and-on\x1b[31m' }, 0);
  long.update({ kind: 'transfer', total: 100, items: 1 }, 0);
  long.update({ kind: 'blob', digest: 'x', done: 50, total: 100 }, 0);
  const l = long.line(80, 0, bar);
  t.notMatch(l, /\x1b/, 'control characters from a manifest never reach the terminal');
  t.match(l, /^a-very-long-target-name-tha…/, 'a long name is cut with an ellipsis');
});

t.test('human sizes and durations', async (t) => {
  t.equal(human(0), '0 B');
  t.equal(human(1536), '1.5 KiB');
  t.equal(human(200 * MiB), '200 MiB');
  t.equal(duration(5), '5s');
  t.equal(duration(65), '1m05s');
  t.equal(duration(7800), '2h10m');
  t.equal(duration(Infinity), '-');
});
