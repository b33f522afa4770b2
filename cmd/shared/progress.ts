import type { OnProgress, ProgressEvent } from '../../src/base/index.js';
import { ProgressView } from './progress-view.js';

/** Not on a terminal: nothing for the first 5 s (most commands end by then), then a line this often. */
const PLAIN_DELAY_MS = 5000;
const PLAIN_EVERY_MS = 10_000;

export interface Progress {
  readonly onProgress: OnProgress;
  /** Ends the display (the bar's line is cleared, so the command's own output follows cleanly). */
  stop(): void;
}

/**
 * Progress of one command, by where stderr goes: on a terminal one bar for the whole operation (target,
 * totals, human sizes, rate, ETA, fitting the width); JSON lines with --json; otherwise a plain line
 * every 10 s once the command has run 5 s (a log or a pipe sees that it is alive, and a quick command
 * prints nothing).
 */
export function makeProgress(globals: { readonly json: boolean }, name: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (globals.json) {
    return { onProgress: (ev: ProgressEvent) => stream.write(JSON.stringify({ progress: ev }) + '\n'), stop: () => {} };
  }
  const view = new ProgressView(Date.now());
  if (!stream.isTTY) {
    let last = 0;
    let stopped = false;
    const tick = () => {
      const now = Date.now();
      if (stopped || !view.active || now - view.started < PLAIN_DELAY_MS || now - last < PLAIN_EVERY_MS) return;
      last = now;
      stream.write(`[${name} ${Math.round((now - view.started) / 1000)}s] ${view.plain(now)}\n`);
    };
    const timer = setInterval(tick, 1000);
    timer.unref();
    return {
      onProgress: (ev) => {
        view.update(ev, Date.now());
        tick();
      },
      stop: () => {
        stopped = true;
        clearInterval(timer);
      },
    };
  }
  // One line redrawn in place: carriage return, the line (never wider than the terminal, so it never
  // wraps), erase to the end. Stopping erases it, so the command's output starts on a clean line.
  let timer: NodeJS.Timeout | undefined;
  let drawn = '';
  const draw = () => {
    const line = view.line(stream.columns || 80, Date.now(), bar);
    if (line === drawn) return;
    drawn = line;
    stream.write(`\r${line}\x1b[K`);
  };
  return {
    onProgress: (ev) => {
      view.update(ev, Date.now());
      if (timer) return;
      stream.write('\x1b[?25l'); // hide the cursor while the line is redrawn
      draw();
      timer = setInterval(draw, 125);
      timer.unref();
    },
    stop: () => {
      if (!timer) return;
      clearInterval(timer);
      timer = undefined;
      stream.write('\r\x1b[K\x1b[?25h');
    },
  };
}

/** `#####-----`: `fraction` of `size` columns done. */
function bar(fraction: number, size: number): string {
  const done = Math.round(Math.min(1, Math.max(0, fraction)) * size);
  return '#'.repeat(done) + '-'.repeat(size - done);
}
