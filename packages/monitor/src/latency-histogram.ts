import { Distribution, HdrIndexer, type LatencySummary, type SignificantDigits, scaleValue } from './distribution.js'
import { MonitorError } from './monitor-error.js'

export interface LatencyHistogramOptions {
  /** HDR precision: significant decimal digits kept (default 3, i.e. 0.1 % resolution). */
  significantDigits?: SignificantDigits
}

/**
 * A latency recorder with HDR percentiles, shared by the monitor's windows and the
 * benchmark so both report the same maths. Values are milliseconds (fractions allowed,
 * resolved to 1 µs).
 */
export interface LatencyHistogram {
  /** Number of recorded values. */
  readonly count: number
  /** Records one value in milliseconds. Throws `APT_MONITOR_INVALID_ARGUMENT` if negative or not finite. */
  record (valueMs: number): void
  /** Value at `percentile` (0 < p ≤ 100) in ms, or null when nothing was recorded. */
  percentile (percentile: number): number | null
  /** count, min, mean, max, p50, p90, p95, p99, p999 in ms. */
  summary (): LatencySummary
  /** Adds every value recorded in `other` (another `createLatencyHistogram` result). */
  merge (other: LatencyHistogram): void
  reset (): void
}

export function assertMeasurement (name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new MonitorError('APT_MONITOR_INVALID_ARGUMENT', `${name} must be a finite, non-negative number, got ${String(value)}`)
  }
}

function assertPercentile (percentile: number): void {
  if (!(percentile > 0 && percentile <= 100)) {
    throw new MonitorError('APT_MONITOR_INVALID_ARGUMENT', `percentile must be in (0, 100], got ${String(percentile)}`)
  }
}

class HdrLatencyHistogram implements LatencyHistogram {
  readonly #distribution: Distribution
  readonly #indexer: HdrIndexer

  constructor (digits: SignificantDigits) {
    this.#distribution = new Distribution(digits)
    this.#indexer = new HdrIndexer(digits)
  }

  get count (): number {
    return this.#distribution.count
  }

  record (valueMs: number): void {
    assertMeasurement('valueMs', valueMs)
    const scaled = scaleValue(valueMs)
    this.#distribution.recordAt(this.#indexer.indexOf(scaled), scaled, valueMs)
  }

  percentile (percentile: number): number | null {
    assertPercentile(percentile)
    return this.#distribution.percentile(percentile)
  }

  summary (): LatencySummary {
    return this.#distribution.summary()
  }

  merge (other: LatencyHistogram): void {
    if (!(other instanceof HdrLatencyHistogram)) {
      throw new MonitorError('APT_MONITOR_INVALID_ARGUMENT', 'merge() accepts only histograms made by createLatencyHistogram()')
    }
    this.#distribution.add(other.#distribution)
  }

  reset (): void {
    this.#distribution.reset()
  }
}

export function createLatencyHistogram (options: LatencyHistogramOptions = {}): LatencyHistogram {
  const digits = options.significantDigits ?? 3
  if (![1, 2, 3, 4, 5].includes(digits)) {
    throw new MonitorError('APT_MONITOR_INVALID_OPTIONS', `significantDigits must be an integer from 1 to 5, got ${String(digits)}`)
  }
  return new HdrLatencyHistogram(digits)
}
