import { Distribution, type HdrIndexer, type LatencySummary, type SignificantDigits, scaleValue, summarizeSum } from './distribution.js'

/** The four recorded distributions, in slice order. */
export const DISTRIBUTION_KINDS = ['durationMs', 'ttfbMs', 'ttftMs', 'overheadUs'] as const
export type DistributionKind = (typeof DISTRIBUTION_KINDS)[number]

export interface StatusCounts {
  '2xx': number
  '3xx': number
  '4xx': number
  '5xx': number
  /** 1xx, 0 and anything outside 100..599. Requests recorded without a status are not counted. */
  other: number
}

export interface RouteStats {
  route: string
  count: number
  errors: number
}

export interface WindowMemory {
  /** Latest sampled resident set size. */
  rssBytes: number
  heapUsedBytes: number
  /** Latest sample minus the earliest sample still inside the window (negative when memory shrank). */
  rssGrowthBytes: number
  heapUsedGrowthBytes: number
}

export interface WindowEventLoopDelay {
  /** Worst per-sample p99 event-loop delay seen in the window. */
  p99Ms: number
  /** Largest event-loop delay seen in the window. */
  maxMs: number
}

/** Statistics of one sliding window, as served in `snapshot().windows`. */
export interface WindowStats {
  windowMs: number
  /** Time span the figures cover: between `windowMs - sliceMs` and `windowMs` (less just after start). */
  coveredMs: number
  count: number
  errors: number
  /** errors / count, or null when count is 0. */
  errorRate: number | null
  requestsPerSecond: number
  bytes: number
  bytesPerSecond: number
  statusCounts: StatusCounts
  durationMs: LatencySummary
  ttfbMs: LatencySummary
  ttftMs: LatencySummary
  overheadUs: LatencySummary
  /** Streams open now. */
  activeStreams: number
  /** Most streams open at once during the window. */
  peakActiveStreams: number
  /** null when memory sampling is off or no sample was taken yet. */
  memory: WindowMemory | null
  /** null when event-loop sampling is off or no sample fell in the window. */
  eventLoopDelay: WindowEventLoopDelay | null
  /** Per-route counts (routes given to `start`, `track` or `record`), busiest first. */
  routes: RouteStats[]
}

/** Window figures without the distributions. */
export type WindowCounters = Omit<WindowStats, DistributionKind>

/** Latest process-level samples the window needs to report memory. */
export interface MemoryReading {
  rssBytes: number
  heapUsedBytes: number
}

const STATUS_OTHER = 4

export function statusIndex (status: number): number {
  if (status >= 200 && status < 600) return Math.floor(status / 100) - 2
  return STATUS_OTHER
}

/** Larger of two values where NaN means "no sample". */
export function maxOfSampled (a: number, b: number): number {
  if (Number.isNaN(a)) return b
  if (Number.isNaN(b)) return a
  return Math.max(a, b)
}

interface RouteCounter {
  count: number
  errors: number
}

/**
 * One request's facts, validated and pre-scaled once so that recording it into several
 * slices repeats no work. The monitor reuses a single instance (no per-request allocation).
 */
export class PreparedSample {
  route: string | undefined = undefined
  isError = false
  /** Index into `Slice.statuses`, or -1 when the request has no status. */
  statusIndex = -1
  bytes = 0
  /** Per distribution kind: whether a value is present, the value, its scaled form and counts index. */
  readonly present: boolean[] = [false, false, false, false]
  readonly values: number[] = [0, 0, 0, 0]
  readonly scaled: number[] = [0, 0, 0, 0]
  readonly indexes: number[] = [0, 0, 0, 0]

  setValue (kind: number, value: number | undefined, indexer: HdrIndexer): void {
    if (value === undefined) {
      this.present[kind] = false
      return
    }
    const scaled = scaleValue(value)
    this.present[kind] = true
    this.values[kind] = value
    this.scaled[kind] = scaled
    this.indexes[kind] = indexer.indexOf(scaled)
  }
}

/** One time slice of a window: counters plus one distribution per kind. */
export class Slice {
  epoch = Number.NEGATIVE_INFINITY
  count = 0
  errors = 0
  bytes = 0
  readonly statuses: number[] = [0, 0, 0, 0, 0]
  readonly distributions: readonly Distribution[]
  peakActive = 0
  firstRssBytes = Number.NaN
  firstHeapUsedBytes = Number.NaN
  eventLoopP99Ms = Number.NaN
  eventLoopMaxMs = Number.NaN
  readonly routes = new Map<string, RouteCounter>()

  constructor (digits: SignificantDigits) {
    this.distributions = DISTRIBUTION_KINDS.map(() => new Distribution(digits))
  }

  reset (epoch: number, activeStreams: number): void {
    this.epoch = epoch
    this.count = 0
    this.errors = 0
    this.bytes = 0
    this.statuses.fill(0)
    for (const distribution of this.distributions) distribution.reset()
    this.peakActive = activeStreams
    this.firstRssBytes = Number.NaN
    this.firstHeapUsedBytes = Number.NaN
    this.eventLoopP99Ms = Number.NaN
    this.eventLoopMaxMs = Number.NaN
    for (const counter of this.routes.values()) {
      counter.count = 0
      counter.errors = 0
    }
  }

  /** Adds one request. O(1): a few counters and at most four histogram increments. */
  add (sample: PreparedSample): void {
    this.count++
    if (sample.isError) this.errors++
    this.bytes += sample.bytes
    if (sample.statusIndex >= 0) this.statuses[sample.statusIndex] = (this.statuses[sample.statusIndex] ?? 0) + 1
    for (let kind = 0; kind < 4; kind++) {
      if (sample.present[kind] === true) {
        this.distributions[kind]?.recordAt(sample.indexes[kind] ?? 0, sample.scaled[kind] ?? 0, sample.values[kind] ?? 0)
      }
    }
    if (sample.route !== undefined) this.#countRoute(sample.route, sample.isError)
  }

  #countRoute (route: string, isError: boolean): void {
    let counter = this.routes.get(route)
    if (counter === undefined) {
      counter = { count: 0, errors: 0 }
      this.routes.set(route, counter)
    }
    counter.count++
    if (isError) counter.errors++
  }
}

/**
 * A sliding window of `windowMs` split into `sliceCount` rotating slices. Recording
 * touches only the current slice (O(1)); reading merges the live slices. The oldest
 * slice leaves the window as a whole, so a window covers between
 * `windowMs - sliceMs` and `windowMs` of history.
 */
export class SlidingWindow {
  readonly windowMs: number
  readonly sliceMs: number
  readonly #slices: Slice[]
  readonly #startedAt: number
  readonly #digits: SignificantDigits
  #epoch: number
  /**
   * Per distribution kind, once read: the sum of the window's completed slices up to epoch
   * `#sealedThrough[kind]`. Completed slices no longer change, so a read adds the slices
   * completed since the last read and reads this sum and the current slice together (no merge
   * of every slice); a slice leaving the window is taken out as it is reset.
   */
  readonly #sealed: (Distribution | null)[] = [null, null, null, null]
  readonly #sealedThrough: number[] = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]

  constructor (windowMs: number, sliceCount: number, digits: SignificantDigits, startedAt: number) {
    this.windowMs = windowMs
    this.sliceMs = windowMs / sliceCount
    this.#digits = digits
    this.#slices = Array.from({ length: sliceCount }, () => new Slice(digits))
    this.#startedAt = startedAt
    this.#epoch = Math.floor(startedAt / this.sliceMs)
    this.#sliceAt(this.#epoch).reset(this.#epoch, 0)
  }

  #sliceAt (epoch: number): Slice {
    const length = this.#slices.length
    return this.#slices[((epoch % length) + length) % length] as Slice
  }

  /** The slice `now` falls in, rotating out slices that have left the window. */
  current (now: number, activeStreams: number): Slice {
    const epoch = Math.floor(now / this.sliceMs)
    if (epoch > this.#epoch) {
      // A clock that goes backwards keeps writing to the newest slice instead.
      const steps = Math.min(epoch - this.#epoch, this.#slices.length)
      for (let step = steps - 1; step >= 0; step--) {
        const slice = this.#sliceAt(epoch - step)
        this.#unseal(slice)
        slice.reset(epoch - step, activeStreams)
      }
      this.#epoch = epoch
    }
    return this.#sliceAt(this.#epoch)
  }

  /** Live slices, oldest first. */
  #live (now: number, activeStreams: number): Slice[] {
    this.current(now, activeStreams)
    const live: Slice[] = []
    const oldest = this.#epoch - this.#slices.length + 1
    for (let epoch = oldest; epoch <= this.#epoch; epoch++) {
      const slice = this.#sliceAt(epoch)
      if (slice.epoch === epoch) live.push(slice)
    }
    return live
  }

  coveredMs (now: number): number {
    const oldestStart = (this.#epoch - this.#slices.length + 1) * this.sliceMs
    return Math.max(0, now - Math.max(this.#startedAt, oldestStart))
  }

  /** A slice about to be reset leaves the sealed sums that hold it. */
  #unseal (slice: Slice): void {
    for (let kind = 0; kind < 4; kind++) {
      const sealed = this.#sealed[kind]
      if (sealed !== null && sealed !== undefined && slice.epoch <= (this.#sealedThrough[kind] as number)) {
        sealed.subtract(slice.distributions[kind] as Distribution)
      }
    }
  }

  /** One distribution kind over the live slices: the completed slices' running sum and the current slice, read together. */
  summary (kind: DistributionKind, now: number, activeStreams: number): LatencySummary {
    const index = DISTRIBUTION_KINDS.indexOf(kind)
    const live = this.#live(now, activeStreams)
    let sealed = this.#sealed[index]
    if (sealed === null || sealed === undefined) {
      sealed = new Distribution(this.#digits)
      this.#sealed[index] = sealed
    }
    const through = this.#sealedThrough[index] as number
    let min = Number.POSITIVE_INFINITY
    let max = Number.NEGATIVE_INFINITY
    for (const slice of live) {
      const distribution = slice.distributions[index] as Distribution
      if (slice.epoch !== this.#epoch && slice.epoch > through) sealed.add(distribution)
      if (distribution.count === 0) continue
      if (distribution.min < min) min = distribution.min
      if (distribution.max > max) max = distribution.max
    }
    this.#sealedThrough[index] = this.#epoch - 1
    // A sum that slices have left keeps no exact min or max: the live slices' own are exact.
    return summarizeSum([sealed, this.#sliceAt(this.#epoch).distributions[index] as Distribution], min, max)
  }

  /** Everything except the four distributions (cheap: no histogram merge). */
  counters (now: number, activeStreams: number, memory: MemoryReading | null): WindowCounters {
    const live = this.#live(now, activeStreams)
    let count = 0
    let errors = 0
    let bytes = 0
    let peakActive = activeStreams
    const statuses = [0, 0, 0, 0, 0]
    let firstRss = Number.NaN
    let firstHeapUsed = Number.NaN
    let eventLoopP99Ms = Number.NaN
    let eventLoopMaxMs = Number.NaN
    const routes = new Map<string, RouteStats>()
    for (const slice of live) {
      count += slice.count
      errors += slice.errors
      bytes += slice.bytes
      if (slice.peakActive > peakActive) peakActive = slice.peakActive
      for (let index = 0; index < statuses.length; index++) statuses[index] = (statuses[index] ?? 0) + (slice.statuses[index] ?? 0)
      if (Number.isNaN(firstRss) && !Number.isNaN(slice.firstRssBytes)) {
        firstRss = slice.firstRssBytes
        firstHeapUsed = slice.firstHeapUsedBytes
      }
      eventLoopP99Ms = maxOfSampled(eventLoopP99Ms, slice.eventLoopP99Ms)
      eventLoopMaxMs = maxOfSampled(eventLoopMaxMs, slice.eventLoopMaxMs)
      for (const [route, counter] of slice.routes) {
        if (counter.count === 0) continue
        const stats = routes.get(route)
        if (stats === undefined) routes.set(route, { route, count: counter.count, errors: counter.errors })
        else {
          stats.count += counter.count
          stats.errors += counter.errors
        }
      }
    }
    const seconds = Math.max(this.coveredMs(now), this.sliceMs) / 1000
    return {
      windowMs: this.windowMs,
      coveredMs: this.coveredMs(now),
      count,
      errors,
      errorRate: count === 0 ? null : errors / count,
      requestsPerSecond: count / seconds,
      bytes,
      bytesPerSecond: bytes / seconds,
      statusCounts: {
        '2xx': statuses[0] ?? 0,
        '3xx': statuses[1] ?? 0,
        '4xx': statuses[2] ?? 0,
        '5xx': statuses[3] ?? 0,
        other: statuses[4] ?? 0,
      },
      activeStreams,
      peakActiveStreams: peakActive,
      memory: memory === null || Number.isNaN(firstRss)
        ? null
        : {
            rssBytes: memory.rssBytes,
            heapUsedBytes: memory.heapUsedBytes,
            rssGrowthBytes: memory.rssBytes - firstRss,
            heapUsedGrowthBytes: memory.heapUsedBytes - firstHeapUsed,
          },
      eventLoopDelay: Number.isNaN(eventLoopMaxMs) ? null : { p99Ms: eventLoopP99Ms, maxMs: eventLoopMaxMs },
      routes: [...routes.values()].sort((a, b) => b.count - a.count || (a.route < b.route ? -1 : 1)),
    }
  }

  read (now: number, activeStreams: number, memory: MemoryReading | null): WindowStats {
    const { activeStreams: active, peakActiveStreams, memory: windowMemory, eventLoopDelay, routes, ...head } = this.counters(now, activeStreams, memory)
    return {
      ...head,
      durationMs: this.summary('durationMs', now, activeStreams),
      ttfbMs: this.summary('ttfbMs', now, activeStreams),
      ttftMs: this.summary('ttftMs', now, activeStreams),
      overheadUs: this.summary('overheadUs', now, activeStreams),
      activeStreams: active,
      peakActiveStreams,
      memory: windowMemory,
      eventLoopDelay,
      routes,
    }
  }
}
