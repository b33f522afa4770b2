import type { ProgressEvent } from '../../src/base/index.js';
import { human } from './format.js';

/** A duration in seconds as "12s", "3m05s", "2h10m". */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '-';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** Seconds of transfer the rate is averaged over. */
const RATE_WINDOW_MS = 5000;

/**
 * What one operation has done so far, from its progress events: one overall figure (bytes of every
 * blob, the announced transfer total when there is one), the rate over the last seconds, the item (a
 * target) and the step. Pure: the caller passes the time; rendering is {@link line} and {@link plain}.
 */
export class ProgressView {
  private total: number | undefined;
  private readonly blobs = new Map<string, { done: number; total: number }>();
  /** Bytes that crossed the wire (skipped blobs count as done, not as moved). */
  private moved = 0;
  private readonly samples: [number, number][] = [];
  private item: string | undefined;
  private step: string | undefined;
  private stepName: string | undefined;
  private stepStarted: number;
  /** True once any event arrived (nothing is drawn before). */
  active = false;

  constructor(readonly started: number) {
    this.stepStarted = started;
  }

  update(ev: ProgressEvent, now: number): void {
    this.active = true;
    switch (ev.kind) {
      case 'step':
        this.step = ev.detail !== undefined ? `${ev.step} ${ev.detail}` : ev.step;
        this.stepName = ev.step;
        this.stepStarted = now;
        return;
      case 'transfer':
        this.total = ev.total;
        return;
      case 'item':
        this.item = ev.name;
        return;
      case 'blob': {
        if (ev.label !== undefined) this.item = ev.label;
        const b = this.blobs.get(ev.digest) ?? { done: 0, total: ev.total };
        if (ev.done > b.done) this.moved += ev.done - b.done;
        this.blobs.set(ev.digest, { done: Math.max(b.done, ev.done), total: ev.total });
        break;
      }
      case 'blob-done': {
        const b = this.blobs.get(ev.digest) ?? { done: 0, total: ev.total };
        if (!ev.skipped && ev.total > b.done) this.moved += ev.total - b.done;
        this.blobs.set(ev.digest, { done: ev.total, total: ev.total });
        break;
      }
    }
    this.samples.push([now, this.moved]);
    while (this.samples.length > 2 && this.samples[1]![0] < now - RATE_WINDOW_MS) this.samples.shift();
  }

  /** Bytes done and the total (announced, or the sum of the blobs seen so far). */
  figures(): { done: number; total: number | undefined; known: number } {
    let done = 0;
    let known = 0;
    for (const b of this.blobs.values()) {
      done += b.done;
      known += b.total;
    }
    return { done, total: this.total !== undefined ? Math.max(this.total, done) : undefined, known };
  }

  /** Bytes per second over the last few seconds (0 before two samples). */
  rate(now: number): number {
    const first = this.samples[0];
    if (!first || now - first[0] < 250) return 0;
    return (this.moved - first[1]) / ((now - first[0]) / 1000);
  }

  private parts(now: number): { label: string; fraction?: number; pct?: string; sizes: string; speed?: string; eta?: string } {
    const label = this.item ?? this.step ?? '';
    if (this.blobs.size === 0) return { label, sizes: duration((now - this.stepStarted) / 1000) };
    const { done, total, known } = this.figures();
    const rate = this.rate(now);
    const speed = rate > 0 ? `${human(rate)}/s` : undefined;
    const opt = (k: 'speed' | 'eta', v: string | undefined) => (v !== undefined ? { [k]: v } : {});
    if (total === undefined || total === 0) return { label, sizes: `${human(done)} of ${human(known)}`, ...opt('speed', speed) };
    const fraction = Math.min(1, done / total);
    const eta = rate > 0 && done < total ? `ETA ${duration((total - done) / rate)}` : undefined;
    return { label, fraction, pct: `${Math.floor(fraction * 100)}%`, sizes: `${human(done)}/${human(total)}`, ...opt('speed', speed), ...opt('eta', eta) };
  }

  /**
   * One terminal line of at most `width - 1` columns: `LABEL [bar]  45%  90.1 MiB/200 MiB  44.9 MiB/s  ETA 3s`.
   * The bar takes what the text leaves (10 to 40 columns) and goes first when the line is too narrow.
   */
  line(width: number, now: number, drawBar: (fraction: number, size: number) => string): string {
    const max = Math.max(10, width - 1);
    const p = this.parts(now);
    const right = ['', p.pct?.padStart(4), p.sizes, p.speed, p.eta].filter((x) => x !== undefined).join('  ');
    let label = clean(p.label);
    const labelRoom = Math.max(8, Math.min(28, max - right.length - 12));
    if (label.length > labelRoom) label = `${label.slice(0, labelRoom - 1)}…`;
    const barSize = Math.min(40, max - label.length - right.length - 1);
    const bar = p.fraction !== undefined && barSize >= 10 ? ` ${drawBar(p.fraction, barSize)}` : '';
    const out = `${label}${bar}${right}`;
    return out.length > max ? out.slice(0, max) : out;
  }

  /** A line for a log or a pipe: `pull: web: 90.1 MiB/200 MiB (45%), 44.9 MiB/s, ETA 3s`. */
  plain(now: number): string {
    const p = this.parts(now);
    const label = clean(p.label);
    const step = this.item !== undefined && this.stepName !== undefined ? `${clean(this.stepName)}: ` : '';
    const rest = [`${p.sizes}${p.pct !== undefined ? ` (${p.pct})` : ''}`, p.speed, p.eta].filter((x) => x !== undefined).join(', ');
    return `${step}${label}${label ? ': ' : ''}${rest}`;
  }
}

/** Names come from manifests and registries: no control characters on the terminal. */
function clean(s: string): string {
  return s.replace(/[\0-\x1f\x7f]/g, ' ');
}
