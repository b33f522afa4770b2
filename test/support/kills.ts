import type { TestRandom } from './random.js';

/**
 * How many SIGKILLs a kill-loop test makes: MOSCTL_KILLS when set (a soak run: `MOSCTL_KILLS=200`),
 * else the file's CI default, which is a multiple of its phase count so every phase gets the same share.
 */
export function killCount(ciDefault: number): number {
  const v = Number(process.env['MOSCTL_KILLS']);
  return Number.isInteger(v) && v > 0 ? v : ciDefault;
}

/** Where one kill lands: `at` (in [0, 1)) of the way through `phase`. */
export interface KillPoint<P extends string> {
  readonly phase: P;
  readonly at: number;
}

/**
 * `n` kill points spread over `phases` deterministically, with seeded jitter: point i goes to phase
 * i mod P (so any n >= P hits every phase), and the k-th of a phase's c points lands in the k-th of
 * c equal slices of it. Larger n refines every phase evenly instead of piling up where a run is slow.
 */
export function spreadKills<P extends string>(n: number, phases: readonly P[], rnd: TestRandom): KillPoint<P>[] {
  const perPhase = phases.map((_, p) => Math.floor(n / phases.length) + (p < n % phases.length ? 1 : 0));
  const seen = phases.map(() => 0);
  const out: KillPoint<P>[] = [];
  for (let i = 0; i < n; i++) {
    const p = i % phases.length;
    const k = seen[p]!++;
    out.push({ phase: phases[p]!, at: (k + rnd.next()) / perPhase[p]! });
  }
  return out;
}

/**
 * Runs `lanes` independent workers over `items` at once (each worker takes the next item when its
 * last is done); `work` gets the lane number, so each lane can own its own directory.
 */
export async function inLanes<T>(items: readonly T[], lanes: number, work: (item: T, index: number, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(lanes, items.length) }, async (_, lane) => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i, lane);
      }
    }),
  );
}
