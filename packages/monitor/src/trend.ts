import type { HistoryEntry } from './history.js'

/**
 * Least-squares slope of `ys` against `xs` (units of y per unit of x); null with fewer
 * than two points or when every x is the same.
 */
export function leastSquaresSlope (xs: ArrayLike<number>, ys: ArrayLike<number>): number | null {
  const n = Math.min(xs.length, ys.length)
  if (n < 2) return null
  let sumX = 0
  let sumY = 0
  for (let index = 0; index < n; index++) {
    sumX += xs[index] as number
    sumY += ys[index] as number
  }
  const meanX = sumX / n
  const meanY = sumY / n
  let sxx = 0
  let sxy = 0
  for (let index = 0; index < n; index++) {
    const dx = (xs[index] as number) - meanX
    sxx += dx * dx
    sxy += dx * ((ys[index] as number) - meanY)
  }
  return sxx === 0 ? null : sxy / sxx
}

export function median (values: readonly number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** An explicitly set baseline; a missing field is not compared. */
export interface Baseline {
  p95Ms?: number
  errorRate?: number
}

export interface RegressionOptions {
  /** Window compared against the baseline; must be one of `windowsMs`. Default: 60 000 if configured, else the longest window. */
  windowMs?: number
  /** The current value regresses when it exceeds baseline × ratio. Default 1.5. */
  ratio?: number
  /** Minimum requests in the window (and in a history entry used for the baseline). Default 20. */
  minCount?: number
  /** Minimum qualifying history entries before the history median is used as baseline. Default 5. */
  minHistory?: number
  /** Error-rate baselines below this are raised to it, so a zero baseline does not flag one error. Default 0.01. */
  errorRateFloor?: number
}

export type ResolvedRegressionOptions = Required<RegressionOptions>

export interface RegressionReport {
  windowMs: number
  /** `explicit`: set with `setBaseline`; `history`: median of history entries; `none`: not enough data. */
  baselineSource: 'explicit' | 'history' | 'none'
  baselineP95Ms: number | null
  currentP95Ms: number | null
  /** current / baseline p95, null when not comparable. */
  p95Ratio: number | null
  baselineErrorRate: number | null
  currentErrorRate: number | null
  /** current / max(baseline, errorRateFloor), null when not comparable. */
  errorRateRatio: number | null
  ratioLimit: number
  regressed: boolean
  /** One sentence per regressed figure. */
  reasons: string[]
}

export interface TrendReport {
  /** History entries available. */
  historyEntries: number
  /** Least-squares slope of per-interval p95 duration over the history (ms per minute); null below two points. */
  p95SlopeMsPerMinute: number | null
  /** Least-squares slope of per-interval error rate over the history (ratio per minute). */
  errorRateSlopePerMinute: number | null
  regression: RegressionReport
}

export interface CurrentFigures {
  count: number
  p95Ms: number | null
  errorRate: number | null
}

function slopePerMinute (history: readonly HistoryEntry[], pick: (entry: HistoryEntry) => number | null): number | null {
  const xs: number[] = []
  const ys: number[] = []
  const origin = history[0]?.at ?? 0
  for (const entry of history) {
    const y = pick(entry)
    if (y === null) continue
    xs.push((entry.at - origin) / 60_000)
    ys.push(y)
  }
  return leastSquaresSlope(xs, ys)
}

function formatRate (rate: number): string {
  return `${(rate * 100).toFixed(2)} %`
}

export function analyseTrends (
  history: readonly HistoryEntry[],
  current: CurrentFigures,
  explicit: Baseline | null,
  options: ResolvedRegressionOptions,
): TrendReport {
  let baselineSource: RegressionReport['baselineSource'] = 'none'
  let baselineP95Ms: number | null = null
  let baselineErrorRate: number | null = null
  if (explicit !== null) {
    baselineSource = 'explicit'
    baselineP95Ms = explicit.p95Ms ?? null
    baselineErrorRate = explicit.errorRate ?? null
  } else {
    const usable = history.filter((entry) => entry.count >= Math.max(options.minCount, 1))
    if (usable.length >= options.minHistory) {
      baselineSource = 'history'
      baselineP95Ms = median(usable.flatMap((entry) => (entry.p95Ms === null ? [] : [entry.p95Ms])))
      baselineErrorRate = median(usable.flatMap((entry) => (entry.errorRate === null ? [] : [entry.errorRate])))
    }
  }

  const enough = current.count >= options.minCount
  const currentP95Ms = enough ? current.p95Ms : null
  const currentErrorRate = enough ? current.errorRate : null
  const reasons: string[] = []
  let p95Ratio: number | null = null
  if (currentP95Ms !== null && baselineP95Ms !== null && baselineP95Ms > 0) {
    p95Ratio = currentP95Ms / baselineP95Ms
    if (p95Ratio > options.ratio) {
      reasons.push(`p95 duration ${currentP95Ms.toFixed(1)} ms is ${p95Ratio.toFixed(2)}x the baseline ${baselineP95Ms.toFixed(1)} ms (limit ${options.ratio}x)`)
    }
  }
  let errorRateRatio: number | null = null
  if (currentErrorRate !== null && baselineErrorRate !== null) {
    const reference = Math.max(baselineErrorRate, options.errorRateFloor)
    errorRateRatio = reference > 0 ? currentErrorRate / reference : null
    if (errorRateRatio !== null && errorRateRatio > options.ratio) {
      reasons.push(`error rate ${formatRate(currentErrorRate)} is ${errorRateRatio.toFixed(2)}x the baseline ${formatRate(reference)} (limit ${options.ratio}x)`)
    }
  }

  return {
    historyEntries: history.length,
    p95SlopeMsPerMinute: slopePerMinute(history, (entry) => entry.p95Ms),
    errorRateSlopePerMinute: slopePerMinute(history, (entry) => entry.errorRate),
    regression: {
      windowMs: options.windowMs,
      baselineSource,
      baselineP95Ms,
      currentP95Ms,
      p95Ratio,
      baselineErrorRate,
      currentErrorRate,
      errorRateRatio,
      ratioLimit: options.ratio,
      regressed: reasons.length > 0,
      reasons,
    },
  }
}
