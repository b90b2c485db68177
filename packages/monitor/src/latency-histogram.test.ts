import { describe, expect, test } from 'vitest'
import { createLatencyHistogram } from './latency-histogram.js'
import { MonitorError } from './monitor-error.js'

/** HDR with 3 significant digits: every value is resolved to within 0.1 %. */
function expectWithinHdrPrecision (actual: number | null, expected: number, relative = 0.001): void {
  expect(actual).not.toBeNull()
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(expected * relative)
}

/** Exact nearest-rank percentile of a sorted array. */
function nearestRank (sorted: readonly number[], percentile: number): number {
  const rank = Math.max(1, Math.ceil((percentile / 100) * sorted.length))
  return sorted[rank - 1] as number
}

describe('createLatencyHistogram', () => {
  test('uniform 1..10000 ms: percentiles at their ranks, exact min, mean and max', () => {
    const histogram = createLatencyHistogram()
    for (let value = 1; value <= 10_000; value++) histogram.record(value)
    const summary = histogram.summary()
    expect(summary.count).toBe(10_000)
    expect(summary.min).toBe(1)
    expect(summary.max).toBe(10_000)
    expect(summary.mean).toBe(5000.5)
    expectWithinHdrPrecision(summary.p50, 5000)
    expectWithinHdrPrecision(summary.p90, 9000)
    expectWithinHdrPrecision(summary.p95, 9500)
    expectWithinHdrPrecision(summary.p99, 9900)
    expectWithinHdrPrecision(summary.p999, 9990)
    expectWithinHdrPrecision(histogram.percentile(25), 2500)
  })

  test('a skewed (exponential) distribution matches exact nearest-rank percentiles', () => {
    // Deterministic pseudo-random exponential values with a 50 ms mean.
    let seed = 42
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return (seed + 0.5) / 2 ** 31
    }
    const values: number[] = []
    const histogram = createLatencyHistogram()
    for (let index = 0; index < 50_000; index++) {
      const value = Math.round(-Math.log(random()) * 50 * 1000) / 1000 // µs resolution
      values.push(value)
      histogram.record(value)
    }
    values.sort((a, b) => a - b)
    for (const percentile of [50, 90, 95, 99, 99.9]) {
      expectWithinHdrPrecision(histogram.percentile(percentile), nearestRank(values, percentile))
    }
    expect(histogram.summary().max).toBe(values.at(-1))
  })

  test('sub-millisecond values keep microsecond resolution', () => {
    const histogram = createLatencyHistogram()
    for (let index = 0; index < 100; index++) histogram.record(0.25)
    histogram.record(0.75)
    expect(histogram.percentile(50)).toBe(0.25)
    expect(histogram.summary().max).toBe(0.75)
  })

  test('no percentile exceeds the largest recorded value', () => {
    const histogram = createLatencyHistogram()
    histogram.record(123_456.789)
    const summary = histogram.summary()
    expect(summary.p50).toBe(123_456.789)
    expect(summary.p999).toBe(123_456.789)
    expect(histogram.percentile(99.99)).toBe(123_456.789)
  })

  test('an empty histogram reports count 0 and nulls', () => {
    const histogram = createLatencyHistogram()
    expect(histogram.summary()).toEqual({ count: 0, min: null, mean: null, max: null, p50: null, p90: null, p95: null, p99: null, p999: null })
    expect(histogram.percentile(99)).toBeNull()
  })

  test('merge adds the other histogram; reset empties', () => {
    const low = createLatencyHistogram()
    const high = createLatencyHistogram()
    for (let value = 1; value <= 100; value++) low.record(value)
    for (let value = 101; value <= 200; value++) high.record(value)
    low.merge(high)
    expect(low.count).toBe(200)
    expectWithinHdrPrecision(low.percentile(50), 100)
    expect(low.summary().max).toBe(200)
    expect(high.count).toBe(100)
    low.reset()
    expect(low.count).toBe(0)
    expect(low.summary().max).toBeNull()
  })

  test('lower precision is coarser but still within its resolution', () => {
    const histogram = createLatencyHistogram({ significantDigits: 2 })
    for (let value = 1; value <= 10_000; value++) histogram.record(value)
    expectWithinHdrPrecision(histogram.percentile(50), 5000, 0.01)
  })

  test.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('record(%s) throws APT_MONITOR_INVALID_ARGUMENT', (value) => {
    const histogram = createLatencyHistogram()
    expect(() => histogram.record(value)).toThrow(expect.objectContaining({ name: 'MonitorError', code: 'APT_MONITOR_INVALID_ARGUMENT' }))
    expect(histogram.count).toBe(0)
  })

  test.each([0, -5, 100.5, Number.NaN])('percentile(%s) throws APT_MONITOR_INVALID_ARGUMENT', (percentile) => {
    const histogram = createLatencyHistogram()
    histogram.record(1)
    expect(() => histogram.percentile(percentile)).toThrow(MonitorError)
  })

  test('invalid significantDigits throws APT_MONITOR_INVALID_OPTIONS', () => {
    // @ts-expect-error: out of range on purpose
    expect(() => createLatencyHistogram({ significantDigits: 7 })).toThrow(expect.objectContaining({ code: 'APT_MONITOR_INVALID_OPTIONS' }))
  })
})
