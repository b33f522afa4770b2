import { t as root } from 'tap';
import { createCipheriv, createHash, randomInt } from 'node:crypto';

/**
 * The seed of every random choice a test file makes: MOSCTL_TEST_SEED when set, else a fresh one.
 * Importing this module prints it as a TAP comment, so a failure can be replayed with
 * `MOSCTL_TEST_SEED=<seed> npx tap <file>`.
 */
export const TEST_SEED: number = process.env['MOSCTL_TEST_SEED'] ? Number(process.env['MOSCTL_TEST_SEED']) >>> 0 : randomInt(2 ** 31);
root.comment(`random seed ${TEST_SEED} (replay: MOSCTL_TEST_SEED=${TEST_SEED})`);

/** A reproducible random source. */
export interface TestRandom {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** An integer in [min, max), like crypto.randomInt. */
  int(min: number, max: number): number;
  /** `n` bytes that look random (incompressible, distinct per call), from an AES-256-CTR keystream. */
  bytes(n: number): Buffer;
}

/**
 * A random source for `stream` (one per call site, so draws in one place do not shift another's)
 * seeded from {@link TEST_SEED} or `seed`. Numbers come from mulberry32; bytes from AES-CTR keyed
 * by SHA-256 of seed and stream, so megabytes cost microseconds.
 */
export function testRandom(stream: string, seed: number = TEST_SEED): TestRandom {
  let a = (seed ^ fnv1a(stream)) >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const key = createHash('sha256').update(`${seed}:${stream}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min)),
    bytes: (n) => cipher.update(Buffer.alloc(n)),
  };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
