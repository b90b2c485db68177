import { performance } from 'node:perf_hooks'
import { type AlertRule, defaultAlertRules, validateAlertRules } from './alert-rules.js'
import type { SignificantDigits } from './distribution.js'
import { MonitorError } from './monitor-error.js'
import type { RegressionOptions, ResolvedRegressionOptions } from './trend.js'

/** A memory reading, as `process.memoryUsage()` returns it (bytes). */
export interface MemoryUsage {
  rss: number
  heapUsed: number
}

/**
 * The event-loop delay sampling resolution when none is given (ms). Each sampler is a timer that
 * wakes the loop this often, idle or not; a process that samples twice (the proxy's Prometheus
 * metrics do too) should use the same resolution for both, started in the same turn of the loop,
 * so that one wake-up serves both.
 */
export const DEFAULT_EVENT_LOOP_RESOLUTION_MS = 20

export interface MonitorOptions {
  /** Clock in milliseconds. Default: `performance.timeOrigin + performance.now()` (monotonic, epoch-based). */
  now?: () => number
  /** Sliding window lengths (ms). Default `[10_000, 60_000, 300_000]`. */
  windowsMs?: readonly number[]
  /** Slices each window is split into; a window drops its oldest slice as a whole. Default 10. */
  slicesPerWindow?: number
  /** HDR precision in significant decimal digits, 1..5. Default 3 (0.1 %). */
  significantDigits?: SignificantDigits
  /** Period of the internal `tick()` timer (ms); 0 disables the timer (call `tick()` yourself). Default 1000. */
  sampleIntervalMs?: number
  /** Sample memory on `sample()`/`tick()`. Default true. */
  sampleMemory?: boolean
  /** Memory reader. Default `process.memoryUsage`. */
  memoryUsage?: () => MemoryUsage
  /** Measure event-loop delay with `monitorEventLoopDelay`. Default true. */
  sampleEventLoop?: boolean
  /** Event-loop delay sampling resolution (ms). Default 20. */
  eventLoopResolutionMs?: number
  /** A history entry is recorded by the first `tick()` at least this long after the previous one (ms); 0 disables history. Default 60 000. */
  historyIntervalMs?: number
  /** History entries kept (oldest dropped). Default 360 (6 hours of minutes). */
  historySize?: number
  /** Alert rules. Default `defaultAlertRules()`. Every enabled rule's `windowMs` must be in `windowsMs`. */
  alertRules?: readonly AlertRule[]
  /** Regression signal settings. */
  regression?: RegressionOptions
  /** Distinct route names counted per window; further names count as `(other)`; 0 disables per-route counts. Default 64. */
  maxRoutes?: number
  /** Receives `APT_MONITOR_CALLBACK_FAILED` and `APT_MONITOR_SAMPLE_FAILED` errors. Default: `process.emitWarning`. */
  onError?: (error: MonitorError) => void
}

export interface ResolvedMonitorOptions {
  now: () => number
  windowsMs: readonly number[]
  slicesPerWindow: number
  significantDigits: SignificantDigits
  sampleIntervalMs: number
  memoryUsage: (() => MemoryUsage) | null
  eventLoopResolutionMs: number | null
  historyIntervalMs: number
  historySize: number
  alertRules: readonly AlertRule[]
  regression: ResolvedRegressionOptions
  maxRoutes: number
  onError: (error: MonitorError) => void
}

export const DEFAULT_WINDOWS_MS: readonly number[] = [10_000, 60_000, 300_000]

const defaultNow = (): number => performance.timeOrigin + performance.now()
const defaultMemoryUsage = (): MemoryUsage => process.memoryUsage()
const defaultOnError = (error: MonitorError): void => {
  process.emitWarning(error)
}

function isNonNegative (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function isCount (value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
}

function freezeRule (rule: AlertRule): AlertRule {
  return Object.freeze({ ...rule })
}

/** Applies defaults and validates; throws `APT_MONITOR_INVALID_OPTIONS` listing every problem. */
export function resolveMonitorOptions (options: MonitorOptions): ResolvedMonitorOptions {
  const problems: string[] = []
  const check = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem)
  }

  const now = options.now ?? defaultNow
  check(typeof now === 'function', 'now must be a function returning milliseconds')

  const windowsInput = options.windowsMs ?? DEFAULT_WINDOWS_MS
  let windowsMs: number[] = []
  if (!Array.isArray(windowsInput) || windowsInput.length === 0) {
    problems.push('windowsMs must be a non-empty array of window lengths in milliseconds')
  } else {
    for (const windowMs of windowsInput) {
      check(isCount(windowMs, 1), `windowsMs entries must be positive integers (ms), got ${String(windowMs)}`)
    }
    windowsMs = [...new Set(windowsInput as number[])].sort((a, b) => a - b)
    check(windowsMs.length === windowsInput.length, `windowsMs must not repeat a window, got [${windowsInput.join(', ')}]`)
  }

  const slicesPerWindow = options.slicesPerWindow ?? 10
  check(isCount(slicesPerWindow, 1, 1000), `slicesPerWindow must be an integer from 1 to 1000, got ${String(slicesPerWindow)}`)
  const significantDigits = options.significantDigits ?? 3
  check(isCount(significantDigits, 1, 5), `significantDigits must be an integer from 1 to 5, got ${String(significantDigits)}`)
  const sampleIntervalMs = options.sampleIntervalMs ?? 1000
  check(isNonNegative(sampleIntervalMs), `sampleIntervalMs must be a non-negative number of milliseconds (0 disables the timer), got ${String(sampleIntervalMs)}`)
  const eventLoopResolutionMs = options.eventLoopResolutionMs ?? DEFAULT_EVENT_LOOP_RESOLUTION_MS
  check(isCount(eventLoopResolutionMs, 1), `eventLoopResolutionMs must be a positive integer (ms), got ${String(eventLoopResolutionMs)}`)
  const memoryUsage = options.memoryUsage ?? defaultMemoryUsage
  check(typeof memoryUsage === 'function', 'memoryUsage must be a function')
  const historyIntervalMs = options.historyIntervalMs ?? 60_000
  check(isNonNegative(historyIntervalMs), `historyIntervalMs must be a non-negative number of milliseconds (0 disables history), got ${String(historyIntervalMs)}`)
  const historySize = options.historySize ?? 360
  check(isCount(historySize, 0), `historySize must be a non-negative integer, got ${String(historySize)}`)
  const maxRoutes = options.maxRoutes ?? 64
  check(isCount(maxRoutes, 0), `maxRoutes must be a non-negative integer, got ${String(maxRoutes)}`)
  const onError = options.onError ?? defaultOnError
  check(typeof onError === 'function', 'onError must be a function')

  const regressionInput = options.regression ?? {}
  const regression: ResolvedRegressionOptions = {
    windowMs: regressionInput.windowMs ?? (windowsMs.includes(60_000) ? 60_000 : (windowsMs.at(-1) ?? 60_000)),
    ratio: regressionInput.ratio ?? 1.5,
    minCount: regressionInput.minCount ?? 20,
    minHistory: regressionInput.minHistory ?? 5,
    errorRateFloor: regressionInput.errorRateFloor ?? 0.01,
  }
  check(windowsMs.length === 0 || windowsMs.includes(regression.windowMs), `regression.windowMs ${String(regression.windowMs)} is not one of windowsMs [${windowsMs.join(', ')}]`)
  check(typeof regression.ratio === 'number' && Number.isFinite(regression.ratio) && regression.ratio >= 1, `regression.ratio must be a finite number >= 1, got ${String(regression.ratio)}`)
  check(isCount(regression.minCount, 0), `regression.minCount must be a non-negative integer, got ${String(regression.minCount)}`)
  check(isCount(regression.minHistory, 1), `regression.minHistory must be a positive integer, got ${String(regression.minHistory)}`)
  check(isNonNegative(regression.errorRateFloor) && regression.errorRateFloor <= 1, `regression.errorRateFloor must be a ratio from 0 to 1, got ${String(regression.errorRateFloor)}`)

  const alertRules = options.alertRules ?? defaultAlertRules()
  if (!Array.isArray(alertRules)) problems.push('alertRules must be an array of alert rules')
  else if (windowsMs.length > 0) problems.push(...validateAlertRules(alertRules, windowsMs))

  if (problems.length > 0) {
    throw new MonitorError('APT_MONITOR_INVALID_OPTIONS', `Invalid monitor options: ${problems.join('; ')}`)
  }
  return {
    now,
    windowsMs: Object.freeze(windowsMs),
    slicesPerWindow,
    significantDigits: significantDigits as SignificantDigits,
    sampleIntervalMs,
    memoryUsage: options.sampleMemory === false ? null : memoryUsage,
    eventLoopResolutionMs: options.sampleEventLoop === false ? null : eventLoopResolutionMs,
    historyIntervalMs,
    historySize,
    alertRules: Object.freeze(alertRules.map(freezeRule)),
    regression: Object.freeze(regression),
    maxRoutes,
    onError,
  }
}
