import { describe, expect, test } from 'vitest'
import { Distribution, HdrIndexer } from './distribution.js'
import { PreparedSample, SlidingWindow, statusIndex } from './sliding-window.js'

const indexer = new HdrIndexer(3)

interface SampleFacts {
  status?: number
  route?: string
  error?: boolean
  bytes?: number
  ttfbMs?: number
}

function prepared (durationMs: number, facts: SampleFacts = {}): PreparedSample {
  const sample = new PreparedSample()
  const status = facts.status ?? 200
  sample.route = facts.route
  sample.statusIndex = statusIndex(status)
  sample.isError = facts.error === true || status >= 500
  sample.bytes = facts.bytes ?? 0
  sample.setValue(0, durationMs, indexer)
  sample.setValue(1, facts.ttfbMs, indexer)
  return sample
}

function recordAt (window: SlidingWindow, now: number, durationMs: number, times = 1, facts: SampleFacts = {}): void {
  const sample = prepared(durationMs, facts)
  for (let index = 0; index < times; index++) window.current(now, 0).add(sample)
}

const read = (window: SlidingWindow, now: number) => window.read(now, 0, null)

describe('SlidingWindow', () => {
  test('values roll out slice by slice as the clock advances', () => {
    const window = new SlidingWindow(10_000, 10, 3, 0) // 1 s slices
    recordAt(window, 0, 100, 5)
    recordAt(window, 5_500, 200, 5)

    const full = read(window, 9_999)
    expect(full.count).toBe(10)
    expect(full.durationMs).toMatchObject({ count: 10, min: 100, max: 200, mean: 150 })
    expect(full.durationMs.p50).toBeCloseTo(100, 0)

    // t = 10 s: the slice [0, 1 s) has left the window
    const later = read(window, 10_000)
    expect(later.count).toBe(5)
    expect(later.durationMs).toMatchObject({ count: 5, min: 200, max: 200 })
    expect(later.coveredMs).toBe(9_000)
    expect(later.requestsPerSecond).toBeCloseTo(5 / 9, 12)

    // t = 15.5 s: the slice [5 s, 6 s) has left too
    const empty = read(window, 15_500)
    expect(empty.count).toBe(0)
    expect(empty.durationMs.p50).toBeNull()
    expect(empty.errorRate).toBeNull()
  })

  test('a long idle gap empties every slice, and slices are reused afterwards', () => {
    const window = new SlidingWindow(10_000, 10, 3, 0)
    for (let second = 0; second < 10; second++) recordAt(window, second * 1_000, 50, 3)
    expect(read(window, 9_000).count).toBe(30)
    expect(read(window, 3_600_000).count).toBe(0)
    recordAt(window, 3_600_500, 70, 2)
    expect(read(window, 3_600_900)).toMatchObject({ count: 2, durationMs: { max: 70, min: 70 } })
  })

  test('a clock going backwards keeps writing into the newest slice', () => {
    const window = new SlidingWindow(10_000, 10, 3, 0)
    recordAt(window, 5_000, 10)
    recordAt(window, 4_000, 20)
    expect(read(window, 5_000).count).toBe(2)
  })

  test('requests per second right after start is measured over at least one slice', () => {
    const window = new SlidingWindow(10_000, 10, 3, 0)
    recordAt(window, 500, 1, 5)
    expect(read(window, 500)).toMatchObject({ coveredMs: 500, requestsPerSecond: 5 })
  })

  test('counts statuses, errors, bytes and routes', () => {
    const window = new SlidingWindow(60_000, 6, 3, 0)
    recordAt(window, 0, 10, 3, { status: 200, route: '/v1/messages', bytes: 100 })
    recordAt(window, 0, 10, 1, { status: 529, route: '/v1/messages', bytes: 10 })
    recordAt(window, 1, 10, 2, { status: 404, route: '/v1/models' })
    recordAt(window, 2, 10, 1, { status: 0, error: true })
    const stats = read(window, 1_000)
    expect(stats).toMatchObject({ count: 7, errors: 2, bytes: 310 })
    expect(stats.errorRate).toBeCloseTo(2 / 7, 12)
    expect(stats.statusCounts).toEqual({ '2xx': 3, '3xx': 0, '4xx': 2, '5xx': 1, other: 1 })
    expect(stats.routes).toEqual([
      { route: '/v1/messages', count: 4, errors: 1 },
      { route: '/v1/models', count: 2, errors: 0 },
    ])
  })

  test('each distribution kind is kept apart', () => {
    const window = new SlidingWindow(10_000, 10, 3, 0)
    recordAt(window, 0, 900, 1, { ttfbMs: 40 })
    recordAt(window, 0, 800, 1)
    const stats = read(window, 100)
    expect(stats.durationMs).toMatchObject({ count: 2, max: 900 })
    expect(stats.ttfbMs).toMatchObject({ count: 1, max: 40 })
    expect(stats.ttftMs.count).toBe(0)
    expect(stats.overheadUs.count).toBe(0)
  })
})

test('a read merges the completed slices\' running sum with the current slice: every summary equals the window\'s own samples, summarised afresh', () => {
  // mulberry32 (every bit varies).
  let seed = 5
  const random = (): number => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (const [windowMs, slices] of [[10_000, 10], [60_000, 6], [3_000, 3], [1_000, 1]] as const) {
    const sliceMs = windowMs / slices
    const window = new SlidingWindow(windowMs, slices, 3, 0)
    const samples: { epoch: number, durationMs: number, ttfbMs: number | undefined }[] = []
    let now = 0
    let newestEpoch = 0
    for (let step = 0; step < 4_000; step++) {
      // Mostly small steps, some whole slices, now and then a gap longer than the window or a
      // clock that goes back (which keeps writing to the newest slice).
      const roll = random()
      now += roll < 0.85 ? random() * sliceMs * 0.2 : roll < 0.97 ? random() * sliceMs * 2 : roll < 0.99 ? windowMs * (1 + random()) : -random() * sliceMs
      if (random() < 0.8) {
        // The window moves on when it is written to or read, never back.
        newestEpoch = Math.max(newestEpoch, Math.floor(now / sliceMs))
        const durationMs = random() < 0.1 ? random() * 60_000 : 0.2 + random() ** 3 * 50
        const ttfbMs = random() < 0.5 ? durationMs * random() : undefined
        for (let times = 1 + Math.floor(random() * 3); times > 0; times--) {
          window.current(now, 0).add(prepared(durationMs, { ttfbMs }))
          samples.push({ epoch: newestEpoch, durationMs, ttfbMs })
        }
      }
      // Read (as alerts and snapshots do) at random moments: the running sums must stay exact.
      if (random() < 0.3) {
        const stats = read(window, now)
        newestEpoch = Math.max(newestEpoch, Math.floor(now / sliceMs))
        const inWindow = samples.filter((sample) => sample.epoch > newestEpoch - slices)
        for (const kind of ['durationMs', 'ttfbMs'] as const) {
          const fresh = new Distribution(3)
          for (const sample of inWindow) {
            const value = sample[kind]
            if (value === undefined) continue
            const scaled = Math.min(Math.round(value * 1000), 2 ** 40)
            fresh.recordAt(indexer.indexOf(scaled), scaled, value)
          }
          const expected = fresh.summary()
          const actual = stats[kind]
          // The mean is a sum of floating-point values taken in another order: equal to 1e-9.
          expect({ ...actual, mean: null }).toEqual({ ...expected, mean: null })
          if (expected.mean === null) expect(actual.mean).toBeNull()
          else expect(Math.abs((actual.mean as number) - expected.mean)).toBeLessThanOrEqual(0.001)
        }
      }
    }
  }
})

test('statusIndex buckets HTTP statuses', () => {
  expect([200, 299, 301, 404, 499, 500, 599, 600, 101, 0].map(statusIndex)).toEqual([0, 0, 1, 2, 2, 3, 3, 4, 4, 4])
})
