/**
 * A seeded random generator for the randomized suites (mulberry32): the same cases on every run,
 * and every bit varies (an LCG's low bits, taken modulo a small n, repeat in short cycles).
 */
export interface SeededRandom {
  /** An integer from 0 to n - 1. */
  random: (n: number) => number
  /** One of `items`. */
  pick: <T>(items: readonly T[]) => T
}

export function seededRandom (seed: number): SeededRandom {
  let state = seed
  const random = (n: number): number => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
  return { random, pick: <T>(items: readonly T[]): T => items[random(items.length)] as T }
}
