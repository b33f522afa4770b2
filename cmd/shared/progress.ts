import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { OnProgress, ProgressEvent } from '../../src/base/index.js';

/** Progress bars on a terminal, JSON lines on stderr with --json, nothing otherwise. */
export function makeProgress(globals: { readonly json: boolean }): { onProgress: OnProgress; stop: () => void } {
  if (globals.json) {
    return { onProgress: (ev: ProgressEvent) => process.stderr.write(JSON.stringify({ progress: ev }) + '\n'), stop: () => {} };
  }
  if (!process.stderr.isTTY) return { onProgress: () => {}, stop: () => {} };
  let multi: MultiBar | undefined;
  const bars = new Map<string, SingleBar>();
  return {
    onProgress: (ev) => {
      if (ev.kind === 'step') return;
      multi ??= new MultiBar(
        { stream: process.stderr, format: ' {bar} {percentage}% | {value}/{total} bytes | {name}', hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      );
      let bar = bars.get(ev.digest);
      if (!bar) {
        bar = multi.create(ev.total, 0, { name: ev.digest.slice(0, 19) });
        bars.set(ev.digest, bar);
      }
      if (ev.kind === 'blob') bar.update(ev.done);
      else bar.update(ev.total);
    },
    stop: () => multi?.stop(),
  };
}
