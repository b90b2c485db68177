import { Int32Histogram } from 'hdr-histogram-js'

/** Significant decimal digits kept by an HDR histogram (3 → 0.1 % value resolution). */
export type SignificantDigits = 1 | 2 | 3 | 4 | 5

/**
 * Percentiles and moments of a set of recorded values. Every field except `count` is
 * `null` when nothing was recorded. The unit is that of the recorded values (the field
 * holding the summary names it, e.g. `durationMs`, `overheadUs`).
 */
export interface LatencySummary {
  count: number
  min: number | null
  mean: number | null
  max: number | null
  p50: number | null
  p90: number | null
  p95: number | null
  p99: number | null
  /** 99.9th percentile. */
  p999: number | null
}

/**
 * Values are stored as integers in 1/1000 of the caller's unit (ms → µs, µs → ns), which
 * keeps sub-unit resolution inside HDR's integer buckets.
 */
export const SCALE = 1000
/** Largest scaled value stored; larger ones are clamped (bounds histogram growth). */
const MAX_SCALED = 2 ** 40
const SUMMARY_PERCENTILES: readonly number[] = [50, 90, 95, 99, 99.9]

export function scaleValue (value: number): number {
  const scaled = Math.round(value * SCALE)
  return Math.min(scaled, MAX_SCALED)
}

export function createHdr (digits: SignificantDigits): Int32Histogram {
  // The pure-JS typed-array histogram: on Node 20 it records faster than the packed
  // variant and needs no WebAssembly start-up. It starts small and grows on demand.
  const histogram = new Int32Histogram(1, 2, digits)
  histogram.autoResize = true
  return histogram
}

/**
 * Computes counts-array indexes once per value so the same value can be recorded into
 * several histograms (one per window slice) without repeating the bucket maths. Every
 * histogram sharing a `SignificantDigits` setting shares the index of a value, whatever
 * its current size.
 *
 * Values below 2^32 use integer bit operations (same result as HdrHistogram's
 * `countsArrayIndex`, several times faster on Node 20); larger ones defer to the library.
 */
export class HdrIndexer {
  readonly #template: Int32Histogram
  readonly #halfCountMagnitude: number
  readonly #halfCount: number

  constructor (digits: SignificantDigits) {
    this.#template = createHdr(digits)
    // lowestDiscernibleValue 1 → unitMagnitude 0, which the fast path relies on.
    this.#halfCountMagnitude = this.#template.subBucketHalfCountMagnitude
    this.#halfCount = this.#template.subBucketHalfCount
  }

  indexOf (scaled: number): number {
    if (scaled >= 4_294_967_296) return this.#template.countsArrayIndex(scaled)
    const magnitude = 31 - Math.clz32(scaled) // floor(log2(scaled)); -1 for 0
    const bucket = magnitude > this.#halfCountMagnitude ? magnitude - this.#halfCountMagnitude : 0
    return (bucket + 1) * this.#halfCount + (scaled >>> bucket) - this.#halfCount
  }
}

/**
 * Adds `source`'s counts into `target`. Indexes mean the same value in both (same
 * precision), so counts are added index by index even when the arrays differ in length;
 * HdrHistogram's own `add` falls back to a slow per-value path in that case.
 */
function mergeCounts (target: Int32Histogram, source: Int32Histogram): void {
  if (target.countsArrayLength < source.countsArrayLength) {
    // Grow to cover the source's whole counts array, not just its current max: a reset,
    // reused histogram keeps its grown array while its max starts again from 0, and sizing
    // by that max could shrink the target (HdrHistogram's resize then throws a RangeError).
    target.resize(source.highestEquivalentValue(source.valueFromIndex(source.countsArrayLength - 1)))
    target.highestTrackableValue = target.highestEquivalentValue(target.valueFromIndex(target.countsArrayLength - 1))
  }
  addCounts(target, source, Math.min(source.countsArrayLength, target.countsArrayLength), 1)
  target.setTotalCount(target.totalCount + source.totalCount)
  target.updateMinAndMax(source.maxValue)
  if (source.minNonZeroValue < Number.MAX_SAFE_INTEGER) target.updateMinAndMax(source.minNonZeroValue)
}

/** Takes `source`'s counts out of `target`, which holds them (added before, same precision). */
function subtractCounts (target: Int32Histogram, source: Int32Histogram): void {
  addCounts(target, source, Math.min(source.countsArrayLength, target.countsArrayLength), -1)
  target.setTotalCount(target.totalCount - source.totalCount)
}

/**
 * The counts loop of mergeCounts and subtractCounts, on its own: a first long call is compiled
 * while it runs (on-stack replacement), and code after such a loop that had never run yet (the
 * callers' property reads) made that compiled loop deoptimise at its exit on every later call.
 */
function addCounts (target: Int32Histogram, source: Int32Histogram, length: number, sign: 1 | -1): void {
  for (let index = 0; index < length; index++) {
    const count = source.getCountAtIndex(index)
    if (count !== 0) target.addToCountAtIndex(index, sign * count)
  }
}

function countAtPercentile (percentile: number, total: number): number {
  const exact = (percentile / 100) * total
  // Subtract one ulp so floating-point noise cannot push the rank up by one (as HdrHistogram does).
  const ulp = exact > 0 ? 2 ** (Math.floor(Math.log2(exact)) - 52) : 0
  return Math.max(Math.ceil(exact - ulp), 1)
}

/**
 * Writes into `out[k]` the value (in scaled units) at `percentiles[k]` (ascending, 0 < p ≤ 100)
 * using one pass over the counts array.
 */
export function valuesAtPercentiles (histogram: Int32Histogram, percentiles: readonly number[], out: number[]): void {
  valuesAtPercentilesOfSum([histogram], histogram.totalCount, percentiles, out)
}

/**
 * `valuesAtPercentiles` over the sum of several histograms of one precision, without making the
 * sum: each index's counts are added as the pass goes, and the pass stops at the last percentile.
 */
function valuesAtPercentilesOfSum (histograms: readonly Int32Histogram[], total: number, percentiles: readonly number[], out: number[]): void {
  // No read past the end of `percentiles`: in optimised code such a read deoptimises the function
  // (V8's "out of bounds"), and this one was compiled again after each of those.
  if (percentiles.length === 0) return
  const first = histograms[0] as Int32Histogram
  let length = 0
  for (const histogram of histograms) if (histogram.countsArrayLength > length) length = histogram.countsArrayLength
  let k = 0
  let target = countAtPercentile(percentiles[0] as number, total)
  let running = 0
  for (let index = 0; index < length; index++) {
    let count = 0
    for (let part = 0; part < histograms.length; part++) {
      const histogram = histograms[part] as Int32Histogram
      if (index < histogram.countsArrayLength) count += histogram.getCountAtIndex(index)
    }
    if (count === 0) continue
    running += count
    while (running >= target) {
      // An index means the same value in every histogram of one precision.
      out[k] = first.highestEquivalentValue(first.valueFromIndex(index))
      k++
      if (k === percentiles.length) return
      target = countAtPercentile(percentiles[k] as number, total)
    }
  }
}

function round3 (value: number): number {
  return Math.round(value * 1000) / 1000
}

/**
 * One recorded distribution: an HDR histogram for percentiles plus exact count, sum,
 * min and max (so mean, min and max are exact to the 1/1000-unit resolution, and no
 * percentile exceeds the true max).
 */
export class Distribution {
  readonly histogram: Int32Histogram
  count = 0
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = Number.NEGATIVE_INFINITY

  constructor (digits: SignificantDigits) {
    this.histogram = createHdr(digits)
  }

  /** Records `value` whose scaled form is `scaled` and whose counts index is `index`. O(1). */
  recordAt (index: number, scaled: number, value: number): void {
    const histogram = this.histogram
    if (index < histogram.countsArrayLength) {
      histogram.incrementCountAtIndex(index)
      histogram.updateMinAndMax(scaled)
      histogram.incrementTotalCount()
    } else {
      histogram.recordValue(scaled) // grows the counts array
    }
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  add (other: Distribution): void {
    if (other.count === 0) return
    mergeCounts(this.histogram, other.histogram)
    this.count += other.count
    this.sum += other.sum
    if (other.min < this.min) this.min = other.min
    if (other.max > this.max) this.max = other.max
  }

  /**
   * Takes out `other`, which was added before and has not changed since. Counts, `count` and
   * `sum` stay exact; `min` and `max` cannot be taken back, so they stay as they were and the
   * caller that subtracts sets them (from what is left) before reading a summary. Empty again,
   * it is reset, so no rounding of `sum` carries over.
   */
  subtract (other: Distribution): void {
    if (other.count === 0) return
    if (other.count === this.count) {
      this.reset()
      return
    }
    subtractCounts(this.histogram, other.histogram)
    this.count -= other.count
    this.sum -= other.sum
  }

  reset (): void {
    if (this.count === 0) return
    this.histogram.reset()
    this.count = 0
    this.sum = 0
    this.min = Number.POSITIVE_INFINITY
    this.max = Number.NEGATIVE_INFINITY
  }

  /** The value at `percentile` (0 < p ≤ 100) in the caller's unit, or null when empty. */
  percentile (percentile: number): number | null {
    if (this.count === 0) return null
    const out = [0]
    valuesAtPercentiles(this.histogram, [percentile], out)
    return Math.min((out[0] ?? 0) / SCALE, round3(this.max))
  }

  summary (): LatencySummary {
    if (this.count === 0) return emptySummary()
    const out = [0, 0, 0, 0, 0]
    valuesAtPercentiles(this.histogram, SUMMARY_PERCENTILES, out)
    return summaryOf(this.count, this.sum, this.min, this.max, out)
  }
}

function emptySummary (): LatencySummary {
  return { count: 0, min: null, mean: null, max: null, p50: null, p90: null, p95: null, p99: null, p999: null }
}

function summaryOf (count: number, sum: number, min: number, max: number, out: readonly number[]): LatencySummary {
  // Reported at the histogram's resolution (1/1000 of the unit), like the percentiles.
  const top = round3(max)
  const at = (k: number): number => Math.min((out[k] ?? 0) / SCALE, top)
  return {
    count,
    min: round3(min),
    mean: round3(sum / count),
    max: top,
    p50: at(0),
    p90: at(1),
    p95: at(2),
    p99: at(3),
    p999: at(4),
  }
}

/**
 * The summary of several distributions of one precision taken together, as `summary()` of their
 * merge would give it, in one pass over their counts and without a merged copy. `min` and `max`
 * are the exact extremes of what they hold (a distribution something was subtracted from no
 * longer knows its own).
 */
export function summarizeSum (parts: readonly Distribution[], min: number, max: number): LatencySummary {
  let count = 0
  let sum = 0
  for (const part of parts) {
    count += part.count
    sum += part.sum
  }
  if (count === 0) return emptySummary()
  const out = [0, 0, 0, 0, 0]
  valuesAtPercentilesOfSum(parts.map((part) => part.histogram), count, SUMMARY_PERCENTILES, out)
  return summaryOf(count, sum, min, max, out)
}
