import { channel } from 'node:diagnostics_channel'
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'
import { AlertEvaluator, type AlertState, type AlertTransition } from './alert-evaluator.js'
import { type AlertRule, metricValue } from './alert-rules.js'
import { HdrIndexer, type LatencySummary } from './distribution.js'
import { type HistoryEntry, HistoryRing } from './history.js'
import { assertMeasurement } from './latency-histogram.js'
import { MonitorError } from './monitor-error.js'
import { type MonitorOptions, type ResolvedMonitorOptions, resolveMonitorOptions } from './monitor-options.js'
import {
  type DistributionKind,
  maxOfSampled,
  PreparedSample,
  Slice,
  SlidingWindow,
  statusIndex,
  type WindowCounters,
  type WindowStats,
} from './sliding-window.js'
import { analyseTrends, type Baseline, type TrendReport } from './trend.js'

/** `node:diagnostics_channel` name on which every `AlertTransition` is published. */
export const MONITOR_ALERT_CHANNEL = 'apt:monitor:alert'
const alertChannel = channel(MONITOR_ALERT_CHANNEL)

/** Route name counted once `maxRoutes` distinct names have been seen. */
const OTHER_ROUTE = '(other)'

/** A finished request measured by the caller (`monitor.record`). */
export interface RequestSample {
  /** Whole request duration (ms). */
  durationMs: number
  /** Time to first response byte (ms). */
  ttfbMs?: number
  /** Time to first model token (ms). */
  ttftMs?: number
  /** HTTP status; >= 500 counts as an error. */
  status: number
  /** Response bytes. */
  bytes?: number
  /** Anything but undefined, null or false marks the request as failed. */
  error?: unknown
  /** Time the proxy itself added (µs). */
  overheadUs?: number
  route?: string
}

/** What `handle.finish()` takes; durations come from the handle's own timestamps. */
export interface FinishResult {
  status: number
  bytes?: number
  error?: unknown
  overheadUs?: number
}

/** A request in flight (counted in `activeStreams` until `finish`). */
export interface RequestHandle {
  readonly route: string | undefined
  /** Monitor clock when `start()` was called (ms). */
  readonly startedAt: number
  /** Marks the first response byte (only the first call counts). */
  firstByte (): void
  /** Marks the first model token (only the first call counts). */
  firstToken (): void
  /** Records the request and releases the stream slot; later calls do nothing. */
  finish (result: FinishResult): void
}

export interface MemorySnapshot {
  rssBytes: number
  heapUsedBytes: number
  sampledAt: number
}

/** Event-loop delay over the interval between the two latest samples. */
export interface EventLoopSnapshot {
  p50Ms: number
  p99Ms: number
  maxMs: number
  meanMs: number
  sampledAt: number
}

/** Plain, JSON-serialisable view of the monitor (no NaN, no Infinity). */
export interface MonitorSnapshot {
  at: number
  startedAt: number
  uptimeMs: number
  activeStreams: number
  /** Since the monitor was created. */
  totals: { count: number, errors: number, bytes: number }
  /** One entry per window, shortest first. */
  windows: WindowStats[]
  /** Latest sample; null when memory sampling is off. */
  memory: MemorySnapshot | null
  /** Latest interval; null when event-loop sampling is off or not sampled yet. */
  eventLoopDelay: EventLoopSnapshot | null
  alerts: AlertState[]
  trends: TrendReport
}

export interface Monitor {
  /** Records a request measured by the caller. O(1), no allocation. Ignored after `close()`. */
  record (sample: RequestSample): void
  /** Starts timing a request or stream and increments `activeStreams`. */
  start (route?: string): RequestHandle
  /** Runs `fn` (sync or async), recording its duration and whether it threw/rejected under `name`. Returns what `fn` returns. */
  track<T> (name: string, fn: () => T): T
  /** Streams started and not yet finished. */
  readonly activeStreams: number
  /** Takes a memory and event-loop sample now (no-op for what is disabled). */
  sample (): void
  /** `sample()`, then a history entry if one is due, then `evaluateAlerts()`. The internal timer calls this. */
  tick (): AlertTransition[]
  /** Evaluates every enabled rule now, returns the transitions and hands each to the `onAlert` callbacks. */
  evaluateAlerts (): AlertTransition[]
  /** Registers a transition callback; returns a function that unregisters it. */
  onAlert (callback: (transition: AlertTransition) => void): () => void
  /** Current state per enabled rule. */
  alerts (): AlertState[]
  /** History entries, oldest first. */
  history (): HistoryEntry[]
  /** Slopes over the history and the regression signal for the regression window. */
  trends (): TrendReport
  /** Sets an explicit regression baseline; null returns to the history median. */
  setBaseline (baseline: Baseline | null): void
  snapshot (): MonitorSnapshot
  /** Stops the timer and event-loop sampling and drops callbacks. Idempotent. */
  close (): void
}

function isFailure (error: unknown): boolean {
  return error !== undefined && error !== null && error !== false
}

function assertStatus (status: number): void {
  if (!Number.isInteger(status) || status < 0 || status > 999) {
    throw new MonitorError('APT_MONITOR_INVALID_ARGUMENT', `status must be an integer from 0 to 999, got ${String(status)}`)
  }
}

function assertOptional (name: string, value: number | undefined): void {
  if (value !== undefined) assertMeasurement(name, value)
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

type Finisher = (handle: StreamHandle, result: FinishResult) => void

class StreamHandle implements RequestHandle {
  readonly route: string | undefined
  readonly startedAt: number
  firstByteAt = Number.NaN
  firstTokenAt = Number.NaN
  readonly #clock: () => number
  #finisher: Finisher | null

  constructor (route: string | undefined, clock: () => number, finisher: Finisher | null) {
    this.route = route
    this.#clock = clock
    this.startedAt = clock()
    this.#finisher = finisher
  }

  firstByte (): void {
    if (Number.isNaN(this.firstByteAt)) this.firstByteAt = this.#clock()
  }

  firstToken (): void {
    if (Number.isNaN(this.firstTokenAt)) this.firstTokenAt = this.#clock()
  }

  finish (result: FinishResult): void {
    const finisher = this.#finisher
    this.#finisher = null
    finisher?.(this, result)
  }
}

class RequestMonitor implements Monitor {
  readonly #options: ResolvedMonitorOptions
  readonly #now: () => number
  readonly #startedAt: number
  readonly #windows: SlidingWindow[]
  readonly #indexer: HdrIndexer
  readonly #prepared = new PreparedSample()
  readonly #interval: Slice
  readonly #history: HistoryRing<HistoryEntry>
  readonly #evaluator: AlertEvaluator
  readonly #callbacks = new Set<(transition: AlertTransition) => void>()
  readonly #routes = new Set<string>()
  readonly #eventLoop: IntervalHistogram | null
  #timer: NodeJS.Timeout | null = null
  #closed = false
  #active = 0
  #totalCount = 0
  #totalErrors = 0
  #totalBytes = 0
  #lastHistoryAt: number
  #memory: MemorySnapshot | null = null
  #eventLoopSnapshot: EventLoopSnapshot | null = null
  #baseline: Baseline | null = null

  constructor (options: ResolvedMonitorOptions) {
    this.#options = options
    this.#now = options.now
    const startedAt = options.now()
    this.#startedAt = startedAt
    this.#lastHistoryAt = startedAt
    const digits = options.significantDigits
    this.#windows = options.windowsMs.map((windowMs) => new SlidingWindow(windowMs, options.slicesPerWindow, digits, startedAt))
    this.#indexer = new HdrIndexer(digits)
    this.#interval = new Slice(digits)
    this.#interval.reset(0, 0)
    this.#history = new HistoryRing(options.historyIntervalMs > 0 ? options.historySize : 0)
    this.#evaluator = new AlertEvaluator(options.alertRules, startedAt)
    // First, so that a throwing memoryUsage leaves no timer or event-loop monitor behind.
    if (options.memoryUsage !== null) this.#sampleMemory(startedAt, options.memoryUsage)
    if (options.eventLoopResolutionMs !== null) {
      this.#eventLoop = monitorEventLoopDelay({ resolution: options.eventLoopResolutionMs })
      this.#eventLoop.enable()
    } else {
      this.#eventLoop = null
    }
    if (options.sampleIntervalMs > 0) {
      this.#timer = setTimeout(this.#onTimer, options.sampleIntervalMs)
      this.#timer.unref()
    }
  }

  get activeStreams (): number {
    return this.#active
  }

  #onTimer = (): void => {
    if (this.#closed) return
    try {
      this.tick()
    } catch (error) {
      this.#options.onError(new MonitorError('APT_MONITOR_SAMPLE_FAILED', 'The periodic monitor tick failed', { cause: error }))
    } finally {
      if (!this.#closed) this.#timer?.refresh()
    }
  }

  #assertOpen (method: string): void {
    if (this.#closed) throw new MonitorError('APT_MONITOR_CLOSED', `monitor.${method}() called after close()`)
  }

  #routeName (route: string | undefined): string | undefined {
    if (route === undefined || this.#options.maxRoutes === 0) return undefined
    if (this.#routes.has(route)) return route
    if (this.#routes.size >= this.#options.maxRoutes) return OTHER_ROUTE
    this.#routes.add(route)
    return route
  }

  /** Records the prepared sample into every window's current slice and the history interval. */
  #ingest (): void {
    const now = this.#now()
    const sample = this.#prepared
    for (const window of this.#windows) window.current(now, this.#active).add(sample)
    this.#interval.add(sample)
    this.#totalCount++
    if (sample.isError) this.#totalErrors++
    this.#totalBytes += sample.bytes
  }

  #prepare (
    route: string | undefined,
    status: number | undefined,
    bytes: number,
    isError: boolean,
    durationMs: number,
    ttfbMs: number | undefined,
    ttftMs: number | undefined,
    overheadUs: number | undefined,
  ): void {
    const sample = this.#prepared
    sample.route = this.#routeName(route)
    sample.statusIndex = status === undefined ? -1 : statusIndex(status)
    sample.isError = isError || (status !== undefined && status >= 500)
    sample.bytes = bytes
    sample.setValue(0, durationMs, this.#indexer)
    sample.setValue(1, ttfbMs, this.#indexer)
    sample.setValue(2, ttftMs, this.#indexer)
    sample.setValue(3, overheadUs, this.#indexer)
  }

  record (sample: RequestSample): void {
    assertMeasurement('durationMs', sample.durationMs)
    assertOptional('ttfbMs', sample.ttfbMs)
    assertOptional('ttftMs', sample.ttftMs)
    assertOptional('overheadUs', sample.overheadUs)
    assertOptional('bytes', sample.bytes)
    assertStatus(sample.status)
    if (this.#closed) return
    this.#prepare(sample.route, sample.status, sample.bytes ?? 0, isFailure(sample.error), sample.durationMs, sample.ttfbMs, sample.ttftMs, sample.overheadUs)
    this.#ingest()
  }

  #finish: Finisher = (handle, result) => {
    this.#active--
    assertStatus(result.status)
    assertOptional('bytes', result.bytes)
    assertOptional('overheadUs', result.overheadUs)
    if (this.#closed) return
    const end = this.#now()
    const since = (at: number): number | undefined => (Number.isNaN(at) ? undefined : Math.max(0, at - handle.startedAt))
    this.#prepare(
      handle.route,
      result.status,
      result.bytes ?? 0,
      isFailure(result.error),
      Math.max(0, end - handle.startedAt),
      since(handle.firstByteAt),
      since(handle.firstTokenAt),
      result.overheadUs,
    )
    this.#ingest()
  }

  start (route?: string): RequestHandle {
    if (this.#closed) return new StreamHandle(route, this.#now, null)
    const handle = new StreamHandle(route, this.#now, this.#finish)
    const active = ++this.#active
    for (const window of this.#windows) {
      const slice = window.current(handle.startedAt, active)
      if (active > slice.peakActive) slice.peakActive = active
    }
    return handle
  }

  track<T> (name: string, fn: () => T): T {
    const startedAt = this.#now()
    const done = (failed: boolean): void => {
      if (this.#closed) return
      this.#prepare(name, undefined, 0, failed, Math.max(0, this.#now() - startedAt), undefined, undefined, undefined)
      this.#ingest()
    }
    let result: T
    try {
      result = fn()
    } catch (error) {
      done(true)
      throw error
    }
    if (isThenable(result)) {
      return result.then(
        (value) => {
          done(false)
          return value
        },
        (error: unknown) => {
          done(true)
          throw error
        },
      ) as T
    }
    done(false)
    return result
  }

  #sampleMemory (now: number, read: () => { rss: number, heapUsed: number }): void {
    const usage = read()
    this.#memory = { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, sampledAt: now }
    for (const window of this.#windows) {
      const slice = window.current(now, this.#active)
      if (Number.isNaN(slice.firstRssBytes)) {
        slice.firstRssBytes = usage.rss
        slice.firstHeapUsedBytes = usage.heapUsed
      }
    }
  }

  sample (): void {
    this.#assertOpen('sample')
    const now = this.#now()
    if (this.#options.memoryUsage !== null) this.#sampleMemory(now, this.#options.memoryUsage)
    const histogram = this.#eventLoop
    if (histogram !== null && histogram.count > 0) {
      const snapshot: EventLoopSnapshot = {
        p50Ms: histogram.percentile(50) / 1e6,
        p99Ms: histogram.percentile(99) / 1e6,
        maxMs: histogram.max / 1e6,
        meanMs: histogram.mean / 1e6,
        sampledAt: now,
      }
      histogram.reset()
      this.#eventLoopSnapshot = snapshot
      for (const window of this.#windows) {
        const slice = window.current(now, this.#active)
        slice.eventLoopP99Ms = maxOfSampled(slice.eventLoopP99Ms, snapshot.p99Ms)
        slice.eventLoopMaxMs = maxOfSampled(slice.eventLoopMaxMs, snapshot.maxMs)
      }
    }
  }

  tick (): AlertTransition[] {
    this.#assertOpen('tick')
    this.sample()
    const now = this.#now()
    if (this.#history.capacity > 0 && now - this.#lastHistoryAt >= this.#options.historyIntervalMs) this.#recordHistory(now)
    return this.evaluateAlerts()
  }

  #recordHistory (now: number): void {
    const interval = this.#interval
    const intervalMs = now - this.#lastHistoryAt
    const [duration, ttfb, ttft] = interval.distributions
    const durationSummary = duration?.summary()
    this.#history.push({
      at: now,
      intervalMs,
      count: interval.count,
      errors: interval.errors,
      errorRate: interval.count === 0 ? null : interval.errors / interval.count,
      requestsPerSecond: intervalMs > 0 ? interval.count / (intervalMs / 1000) : 0,
      bytes: interval.bytes,
      p50Ms: durationSummary?.p50 ?? null,
      p95Ms: durationSummary?.p95 ?? null,
      p99Ms: durationSummary?.p99 ?? null,
      meanMs: durationSummary?.mean ?? null,
      maxMs: durationSummary?.max ?? null,
      ttfbP95Ms: ttfb?.percentile(95) ?? null,
      ttftP95Ms: ttft?.percentile(95) ?? null,
      rssBytes: this.#memory?.rssBytes ?? null,
      heapUsedBytes: this.#memory?.heapUsedBytes ?? null,
      eventLoopDelayP99Ms: this.#eventLoopSnapshot?.p99Ms ?? null,
    })
    interval.reset(0, this.#active)
    this.#lastHistoryAt = now
  }

  #windowFor (windowMs: number): SlidingWindow {
    const window = this.#windows.find((candidate) => candidate.windowMs === windowMs)
    if (window === undefined) throw new MonitorError('APT_MONITOR_INVALID_ARGUMENT', `no window of ${windowMs} ms`)
    return window
  }

  evaluateAlerts (): AlertTransition[] {
    this.#assertOpen('evaluateAlerts')
    const now = this.#now()
    const counters = new Map<number, WindowCounters>()
    const summaries = new Map<string, LatencySummary>()
    const readValue = (rule: AlertRule): number | null => {
      const window = this.#windowFor(rule.windowMs)
      let figures = counters.get(rule.windowMs)
      if (figures === undefined) {
        figures = window.counters(now, this.#active, this.#memory)
        counters.set(rule.windowMs, figures)
      }
      if (figures.count < rule.minCount) return null
      return metricValue(rule.metric, figures, (kind: DistributionKind) => {
        const key = `${rule.windowMs}:${kind}`
        let summary = summaries.get(key)
        if (summary === undefined) {
          summary = window.summary(kind, now, this.#active)
          summaries.set(key, summary)
        }
        return summary
      })
    }
    const transitions = this.#evaluator.evaluate(now, readValue)
    for (const transition of transitions) this.#emit(transition)
    return transitions
  }

  #emit (transition: AlertTransition): void {
    if (alertChannel.hasSubscribers) alertChannel.publish(transition)
    for (const callback of [...this.#callbacks]) {
      try {
        callback(transition)
      } catch (error) {
        this.#options.onError(
          new MonitorError('APT_MONITOR_CALLBACK_FAILED', `An onAlert callback threw while handling '${transition.rule.id}' ${transition.state}`, { cause: error }),
        )
      }
    }
  }

  onAlert (callback: (transition: AlertTransition) => void): () => void {
    // Wrap so the same function registered twice is called twice and unsubscribes independently.
    const entry = (transition: AlertTransition): void => callback(transition)
    this.#callbacks.add(entry)
    return () => {
      this.#callbacks.delete(entry)
    }
  }

  alerts (): AlertState[] {
    return this.#evaluator.states()
  }

  history (): HistoryEntry[] {
    return this.#history.toArray()
  }

  #trends (now: number, stats: WindowStats | null): TrendReport {
    const regression = this.#options.regression
    let count: number
    let errorRate: number | null
    let p95Ms: number | null
    if (stats !== null) {
      count = stats.count
      errorRate = stats.errorRate
      p95Ms = stats.durationMs.p95
    } else {
      const window = this.#windowFor(regression.windowMs)
      const figures = window.counters(now, this.#active, null)
      count = figures.count
      errorRate = figures.errorRate
      p95Ms = window.summary('durationMs', now, this.#active).p95
    }
    return analyseTrends(this.#history.toArray(), { count, errorRate, p95Ms }, this.#baseline, regression)
  }

  trends (): TrendReport {
    return this.#trends(this.#now(), null)
  }

  setBaseline (baseline: Baseline | null): void {
    if (baseline !== null) {
      assertOptional('baseline.p95Ms', baseline.p95Ms)
      assertOptional('baseline.errorRate', baseline.errorRate)
      this.#baseline = { ...baseline }
    } else {
      this.#baseline = null
    }
  }

  snapshot (): MonitorSnapshot {
    const now = this.#now()
    const windows = this.#windows.map((window) => window.read(now, this.#active, this.#memory))
    const regressionStats = windows.find((stats) => stats.windowMs === this.#options.regression.windowMs) ?? null
    return {
      at: now,
      startedAt: this.#startedAt,
      uptimeMs: now - this.#startedAt,
      activeStreams: this.#active,
      totals: { count: this.#totalCount, errors: this.#totalErrors, bytes: this.#totalBytes },
      windows,
      memory: this.#memory === null ? null : { ...this.#memory },
      eventLoopDelay: this.#eventLoopSnapshot === null ? null : { ...this.#eventLoopSnapshot },
      alerts: this.alerts(),
      trends: this.#trends(now, regressionStats),
    }
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    this.#eventLoop?.disable()
    this.#callbacks.clear()
  }
}

/** Creates a monitor. Throws `APT_MONITOR_INVALID_OPTIONS` listing every problem with `options`. */
export function createMonitor (options: MonitorOptions = {}): Monitor {
  return new RequestMonitor(resolveMonitorOptions(options))
}
