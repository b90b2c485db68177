import { createLatencyHistogram, type LatencyHistogram } from '@apt/monitor'
import type { Dispatcher } from 'undici'
import { countEventEnds } from './message-request.js'
import { type RawHandler, RawPool } from './raw-pool.js'

/**
 * When a closed-loop phase ends. Warm-up: once both are reached (every connection
 * is open and has served before the window opens). Measure: whichever comes first.
 */
export interface LoopLimit {
  requests?: number
  ms?: number
  /** Warm-up only: also wait until every worker has completed a request (every connection is open and used). */
  everyWorker?: boolean
  /**
   * Warm-up only: once the other conditions hold, poll this every `steadyEveryMs` and open
   * the window when it returns true (the target has reached its steady state), or after
   * `steadyMaxMs` more at most.
   */
  steady?: () => boolean | Promise<boolean>
  steadyEveryMs?: number
  steadyMaxMs?: number
}

export interface ClosedLoopOptions {
  url: string
  /** Workers, each with one request in flight on its own keep-alive connection. */
  concurrency: number
  request: Dispatcher.DispatchOptions
  /** Record time to first byte and gaps between body chunks (SSE streams). */
  streaming: boolean
  warmup: LoopLimit
  measure: LoopLimit
  /** Called when the measured window opens and closes (take CPU and upstream snapshots here). */
  atWindowStart?: () => void | Promise<void>
  atWindowEnd?: () => void | Promise<void>
  signal?: AbortSignal | undefined
}

export interface ClosedLoopResult {
  concurrency: number
  /** Successful (2xx) responses completed inside the measured window. */
  completed: number
  /** Failed requests (network errors and non-2xx statuses) inside the window. */
  errors: number
  firstError: string | null
  windowMs: number
  /** Whole-request latency, ms. */
  latency: LatencyHistogram
  /** Streaming only: time to the first body byte, ms. */
  firstByte: LatencyHistogram | null
  /** Streaming only: gaps between body chunks, ms. */
  gaps: LatencyHistogram | null
  /** Streaming only: events seen per completed stream (smallest). */
  minEvents: number | null
  /** CPU time of this process over the window (user + system), µs. */
  generatorCpuUs: number
  interrupted: boolean
}

type Phase = 'warmup' | 'measure' | 'drain'

const DRAIN_TIMEOUT_MS = 15_000
const WARMUP_CAP_MS = 15_000

/** One worker: a reusable handler that re-sends when its response ends, on its own keep-alive connection. */
class Worker implements RawHandler {
  readonly #loop: Loop
  #started = 0
  #last = 0
  #status = 0
  warmed = false
  #chunks = 0
  #events = 0
  #newline = false
  inFlight = false

  constructor(loop: Loop) {
    this.#loop = loop
  }

  send(): void {
    this.inFlight = true
    this.#status = 0
    this.#chunks = 0
    this.#events = 0
    this.#newline = false
    this.#started = performance.now()
    this.#loop.pool.dispatch(this)
  }

  onHeaders(statusCode: number): void {
    this.#status = statusCode
  }

  onData(chunk: Buffer): void {
    const loop = this.#loop
    if (!loop.streaming) return
    const now = performance.now()
    if (loop.phase === 'measure') {
      if (this.#chunks === 0) loop.firstByte?.record(now - this.#started)
      else loop.gaps?.record(now - this.#last)
    }
    this.#chunks++
    this.#last = now
    this.#events += countEventEnds(chunk, this.#newline)
    this.#newline = chunk[chunk.length - 1] === 0x0a
  }

  onComplete(): void {
    this.inFlight = false
    const ok = this.#status >= 200 && this.#status < 300
    this.#loop.done(this, ok, performance.now() - this.#started, ok ? null : `HTTP ${this.#status}`, this.#events)
  }

  onError(error: Error): void {
    this.inFlight = false
    this.#loop.done(this, false, performance.now() - this.#started, error.message, 0)
  }
}

class Loop {
  readonly pool: RawPool
  readonly streaming: boolean
  readonly latency = createLatencyHistogram()
  readonly firstByte: LatencyHistogram | null
  readonly gaps: LatencyHistogram | null
  phase: Phase = 'warmup'
  completed = 0
  errors = 0
  warmupDone = 0
  minEvents: number | null = null
  firstError: string | null = null
  readonly #options: ClosedLoopOptions
  readonly #workers: Worker[] = []
  #windowStart = 0
  #windowEnd = 0
  #cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 }
  #generatorCpuUs = 0
  #timer: NodeJS.Timeout | undefined
  #warmupTimeOver = false
  #warmupCap: NodeJS.Timeout | undefined
  #warmedWorkers = 0
  #settling = false
  #finished!: () => void
  readonly finished = new Promise<void>((resolve) => {
    this.#finished = resolve
  })
  #drained: (() => void) | undefined
  interrupted = false

  constructor(options: ClosedLoopOptions) {
    this.#options = options
    this.streaming = options.streaming
    this.firstByte = options.streaming ? createLatencyHistogram() : null
    this.gaps = options.streaming ? createLatencyHistogram() : null
    this.pool = new RawPool(options.url, options.request, { connections: options.concurrency })
    for (let index = 0; index < options.concurrency; index++) this.#workers.push(new Worker(this))
  }

  start(): void {
    const { warmup } = this.#options
    if (warmup.ms !== undefined && warmup.ms > 0) {
      this.#timer = setTimeout(() => {
        this.#warmupTimeOver = true
        this.#maybeOpenWindow()
      }, warmup.ms)
    } else {
      this.#warmupTimeOver = true
    }
    // A target that never answers must not hold the run in warm-up forever.
    this.#warmupCap = setTimeout(() => void this.#openWindow(), WARMUP_CAP_MS)
    this.#maybeOpenWindow()
    for (const worker of this.#workers) worker.send()
  }

  #maybeOpenWindow(): void {
    const { warmup, concurrency } = this.#options
    if (!this.#warmupTimeOver || this.warmupDone < (warmup.requests ?? 0)) return
    if (warmup.everyWorker === true && this.#warmedWorkers < concurrency) return
    if (warmup.steady === undefined) {
      void this.#openWindow()
      return
    }
    if (this.#settling) return
    this.#settling = true
    void this.#awaitSteady(warmup.steady, warmup.steadyEveryMs ?? 500, warmup.steadyMaxMs ?? 3_000)
  }

  async #awaitSteady(steady: () => boolean | Promise<boolean>, everyMs: number, maxMs: number): Promise<void> {
    const deadline = performance.now() + maxMs
    // The first answer is the reference the next ones compare with.
    await steady()
    while (this.phase === 'warmup' && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, everyMs))
      if (this.phase !== 'warmup' || await steady()) break
    }
    await this.#openWindow()
  }

  async #openWindow(): Promise<void> {
    if (this.phase !== 'warmup') return
    clearTimeout(this.#warmupCap)
    this.phase = 'measure'
    this.#windowStart = performance.now()
    this.#cpuStart = process.cpuUsage()
    await this.#options.atWindowStart?.()
    const { measure } = this.#options
    if (measure.ms !== undefined && measure.ms > 0) {
      this.#timer = setTimeout(() => void this.closeWindow(false), Math.max(1, measure.ms - (performance.now() - this.#windowStart)))
    }
  }

  async closeWindow(interrupted: boolean): Promise<void> {
    if (this.phase === 'drain') return
    clearTimeout(this.#timer)
    clearTimeout(this.#warmupCap)
    const wasMeasuring = this.phase === 'measure'
    this.phase = 'drain'
    this.interrupted = interrupted
    this.#windowEnd = performance.now()
    if (wasMeasuring) {
      const cpu = process.cpuUsage(this.#cpuStart)
      this.#generatorCpuUs = cpu.user + cpu.system
      await this.#options.atWindowEnd?.()
    } else {
      this.#windowStart = this.#windowEnd
    }
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve
    })
    if (this.#workers.some((worker) => worker.inFlight)) {
      const deadline = setTimeout(() => {
        // Errors every request still in flight or queued; their workers then count as drained.
        this.pool.destroy(new Error('benchmark window closed')).catch(() => undefined)
      }, interrupted ? 0 : DRAIN_TIMEOUT_MS)
      await drained
      clearTimeout(deadline)
    }
    await this.pool.close().catch(() => undefined)
    this.#finished()
  }

  done(worker: Worker, ok: boolean, elapsedMs: number, error: string | null, events: number): void {
    if (this.phase === 'measure') {
      if (ok) {
        this.completed++
        this.latency.record(elapsedMs)
        if (this.streaming && (this.minEvents === null || events < this.minEvents)) this.minEvents = events
      } else {
        this.errors++
        this.firstError ??= error
      }
      const { measure } = this.#options
      if (measure.requests !== undefined && this.completed + this.errors >= measure.requests) void this.closeWindow(false)
    } else if (this.phase === 'warmup') {
      if (!ok) this.firstError ??= error
      this.warmupDone++
      if (!worker.warmed) {
        worker.warmed = true
        this.#warmedWorkers++
      }
      this.#maybeOpenWindow()
    }
    if (this.phase === 'drain') {
      if (!this.#workers.some((candidate) => candidate.inFlight)) this.#drained?.()
      return
    }
    if (ok) worker.send()
    else setTimeout(() => worker.send(), 5).unref()
  }

  result(): ClosedLoopResult {
    return {
      concurrency: this.#options.concurrency,
      completed: this.completed,
      errors: this.errors,
      firstError: this.firstError,
      windowMs: this.#windowEnd - this.#windowStart,
      latency: this.latency,
      firstByte: this.firstByte,
      gaps: this.gaps,
      minEvents: this.minEvents,
      generatorCpuUs: this.#generatorCpuUs,
      interrupted: this.interrupted,
    }
  }
}

/**
 * Closed-loop load: `concurrency` workers each send a request, wait for the whole
 * response, and send the next, over keep-alive connections (`RawPool`). Only requests
 * that complete inside the measured window (after the warm-up) are counted.
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const loop = new Loop(options)
  const onAbort = (): void => void loop.closeWindow(true)
  if (options.signal?.aborted) {
    await loop.pool.close()
    return { ...loop.result(), interrupted: true }
  }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  loop.start()
  await loop.finished
  options.signal?.removeEventListener('abort', onAbort)
  return loop.result()
}
