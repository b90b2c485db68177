import { describe, expect, test } from 'vitest'
import type { HistoryEntry } from './history.js'
import { analyseTrends, leastSquaresSlope, median, type ResolvedRegressionOptions } from './trend.js'

const options: ResolvedRegressionOptions = { windowMs: 60_000, ratio: 1.5, minCount: 20, minHistory: 3, errorRateFloor: 0.01 }

function entry (minute: number, p95Ms: number | null, errorRate: number | null, count = 100): HistoryEntry {
  return {
    at: minute * 60_000,
    intervalMs: 60_000,
    count,
    errors: errorRate === null ? 0 : Math.round(errorRate * count),
    errorRate,
    requestsPerSecond: count / 60,
    bytes: 0,
    p50Ms: p95Ms,
    p95Ms,
    p99Ms: p95Ms,
    meanMs: p95Ms,
    maxMs: p95Ms,
    ttfbP95Ms: null,
    ttftP95Ms: null,
    rssBytes: null,
    heapUsedBytes: null,
    eventLoopDelayP99Ms: null,
  }
}

describe('leastSquaresSlope', () => {
  test('recovers the slope of an exact line', () => {
    expect(leastSquaresSlope([0, 1, 2, 3], [1, 3, 5, 7])).toBe(2)
    expect(leastSquaresSlope([0, 10, 20], [30, 20, 10])).toBe(-1)
  })

  test('fits noisy points by least squares', () => {
    // y = x + noise(+1, -1, -1, +1): the symmetric noise leaves the fitted slope at 1
    expect(leastSquaresSlope([0, 1, 2, 3], [1, 0, 1, 4])).toBeCloseTo(1, 12)
  })

  test('null with fewer than two points or no spread in x', () => {
    expect(leastSquaresSlope([], [])).toBeNull()
    expect(leastSquaresSlope([1], [5])).toBeNull()
    expect(leastSquaresSlope([2, 2, 2], [1, 2, 3])).toBeNull()
  })
})

test('median of odd and even counts', () => {
  expect(median([5, 1, 3])).toBe(3)
  expect(median([4, 1, 3, 2])).toBe(2.5)
  expect(median([])).toBeNull()
})

describe('analyseTrends', () => {
  test('slopes per minute of p95 and error rate, skipping empty intervals', () => {
    const history = [entry(0, 100, 0.01), entry(1, null, null, 0), entry(2, 300, 0.03), entry(3, 400, 0.04)]
    const report = analyseTrends(history, { count: 0, p95Ms: null, errorRate: null }, null, options)
    expect(report.historyEntries).toBe(4)
    expect(report.p95SlopeMsPerMinute).toBeCloseTo(100, 9)
    expect(report.errorRateSlopePerMinute).toBeCloseTo(0.01, 12)
  })

  test('flags a p95 regression against the history median', () => {
    const history = [entry(0, 100, 0), entry(1, 110, 0), entry(2, 90, 0), entry(3, 1000, 0, 5)]
    const report = analyseTrends(history, { count: 50, p95Ms: 200, errorRate: 0 }, null, options)
    // the 5-request minute is below minCount and does not pull the median up
    expect(report.regression).toMatchObject({ baselineSource: 'history', baselineP95Ms: 100, currentP95Ms: 200, p95Ratio: 2, regressed: true })
    expect(report.regression.reasons).toEqual(['p95 duration 200.0 ms is 2.00x the baseline 100.0 ms (limit 1.5x)'])
  })

  test('within the ratio is not a regression', () => {
    const history = [entry(0, 100, 0), entry(1, 100, 0), entry(2, 100, 0)]
    const report = analyseTrends(history, { count: 50, p95Ms: 149, errorRate: 0.005 }, null, options)
    expect(report.regression.regressed).toBe(false)
    expect(report.regression.reasons).toEqual([])
  })

  test('error-rate regression uses the floor when the baseline is zero', () => {
    const history = [entry(0, 100, 0), entry(1, 100, 0), entry(2, 100, 0)]
    const report = analyseTrends(history, { count: 50, p95Ms: 100, errorRate: 0.02 }, null, options)
    expect(report.regression.errorRateRatio).toBeCloseTo(2, 12)
    expect(report.regression.regressed).toBe(true)
    expect(report.regression.reasons).toEqual(['error rate 2.00 % is 2.00x the baseline 1.00 % (limit 1.5x)'])
  })

  test('an explicit baseline wins over history; too little history means no baseline', () => {
    const history = [entry(0, 100, 0), entry(1, 100, 0), entry(2, 100, 0)]
    const explicit = analyseTrends(history, { count: 50, p95Ms: 200, errorRate: 0 }, { p95Ms: 180 }, options)
    expect(explicit.regression).toMatchObject({ baselineSource: 'explicit', baselineP95Ms: 180, baselineErrorRate: null, regressed: false })
    const none = analyseTrends(history.slice(0, 2), { count: 50, p95Ms: 900, errorRate: 0.5 }, null, options)
    expect(none.regression).toMatchObject({ baselineSource: 'none', regressed: false, p95Ratio: null })
  })

  test('too few requests in the current window is not compared', () => {
    const history = [entry(0, 100, 0), entry(1, 100, 0), entry(2, 100, 0)]
    const report = analyseTrends(history, { count: 3, p95Ms: 900, errorRate: 1 }, null, options)
    expect(report.regression).toMatchObject({ currentP95Ms: null, currentErrorRate: null, regressed: false })
  })
})
