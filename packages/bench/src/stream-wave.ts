import type { Dispatcher } from 'undici'
import { type RawHandler, RawPool } from './raw-pool.js'
import { countEventEnds } from './message-request.js'

export interface StreamWaveOptions {
  url: string
  /** Concurrent streams, each on its own connection, all opened within `rampMs`. */
  streams: number
  request: Dispatcher.DispatchOptions
  /** Events each stream must deliver to count as complete. */
  expectedEvents: number
  /** A stream stalls when any gap between chunks, or the wait for the first, exceeds this. */
  stallLimitMs: number
  rampMs: number
  /** Called about every `sampleEveryMs` while the wave runs (memory sampling); `open` = streams opened and not ended. */
  onSample?: (open: number) => void
  sampleEveryMs?: number
  signal?: AbortSignal | undefined
}

export interface StreamWaveResult {
  streams: number
  /** Streams that delivered every event without a stall. */
  clean: number
  /** Streams with a gap (or first-event wait) over the limit. */
  stalled: number
  /** Streams that failed (network error, non-2xx) or ended early. */
  failed: number
  firstError: string | null
  /** Largest gap between chunks of any stream, ms. */
  maxGapMs: number
  /** Largest and 99th-percentile wait for the first event, ms. */
  maxFirstEventMs: number
  p99FirstEventMs: number
  generatorCpuUs: number
  wallMs: number
  interrupted: boolean
}

class Stream implements RawHandler {
  started = 0
  first = -1
  last = 0
  maxGap = 0
  status = 0
  events = 0
  newline = false
  error: string | null = null
  ended = false

  constructor(readonly onEnd: (stream: Stream) => void) {}

  onHeaders(statusCode: number): void {
    this.status = statusCode
  }

  onData(chunk: Buffer): void {
    const now = performance.now()
    if (this.first < 0) this.first = now - this.started
    else if (now - this.last > this.maxGap) this.maxGap = now - this.last
    this.last = now
    this.events += countEventEnds(chunk, this.newline)
    this.newline = chunk[chunk.length - 1] === 0x0a
  }

  onComplete(): void {
    this.ended = true
    this.onEnd(this)
  }

  onError(error: Error): void {
    this.error = error.message
    this.ended = true
    this.onEnd(this)
  }
}

/**
 * Opens `streams` paced SSE streams at once (spread over `rampMs`), lets each run
 * to its end, and reports how many delivered every event without a stall.
 */
export async function runStreamWave(options: StreamWaveOptions): Promise<StreamWaveResult> {
  const pool = new RawPool(options.url, options.request, { connections: options.streams })
  const streams: Stream[] = []
  let open = 0
  let ended = 0
  let launched = 0
  let interrupted = false
  let resolveAll!: () => void
  const allEnded = new Promise<void>((resolve) => {
    resolveAll = resolve
  })
  const checkEnd = (): void => {
    if (ended === launched && (launched === options.streams || interrupted)) resolveAll()
  }
  const onEnd = (): void => {
    open--
    ended++
    checkEnd()
  }
  const cpuStart = process.cpuUsage()
  const started = performance.now()
  const launch = (): void => {
    if (interrupted) return
    const due = options.rampMs <= 0 ? options.streams : Math.min(options.streams, Math.ceil(((performance.now() - started) / options.rampMs) * options.streams))
    while (launched < due) {
      const stream = new Stream(onEnd)
      streams.push(stream)
      launched++
      open++
      stream.started = performance.now()
      pool.dispatch(stream)
    }
    if (launched < options.streams) setTimeout(launch, 1)
  }
  const sampleEveryMs = options.sampleEveryMs ?? 20
  const sampler = options.onSample === undefined
    ? undefined
    : setTimeout(() => {
        options.onSample?.(open)
        sampler?.refresh()
      }, sampleEveryMs)
  const onAbort = (): void => {
    if (interrupted) return
    interrupted = true
    // Destroying the pool errors every dispatched stream, queued ones included.
    pool.destroy(new Error('interrupted')).catch(() => undefined)
    checkEnd()
  }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) onAbort()
  else launch()
  // Generous: a wave whose streams hang is ended after three times its expected length.
  const expectedMs = options.rampMs + options.expectedEvents * (options.stallLimitMs + 50)
  const guard = setTimeout(() => {
    pool.destroy(new Error('stream did not end in time')).catch(() => undefined)
  }, 3 * expectedMs + 5000)
  await allEnded
  clearTimeout(guard)
  clearTimeout(sampler)
  options.signal?.removeEventListener('abort', onAbort)
  const cpu = process.cpuUsage(cpuStart)
  const wallMs = performance.now() - started
  await pool.close().catch(() => undefined)

  let clean = 0
  let stalled = 0
  let failed = 0
  let maxGapMs = 0
  let firstError: string | null = null
  const firstEvents: number[] = []
  for (const stream of streams) {
    if (stream.first >= 0) firstEvents.push(stream.first)
    if (stream.maxGap > maxGapMs) maxGapMs = stream.maxGap
    const ok = stream.error === null && stream.status >= 200 && stream.status < 300 && stream.events >= options.expectedEvents
    if (!ok) {
      failed++
      firstError ??= stream.error ?? (stream.status >= 300 ? `HTTP ${stream.status}` : `ended after ${stream.events} of ${options.expectedEvents} events`)
    } else if (stream.maxGap > options.stallLimitMs || stream.first > options.stallLimitMs) {
      stalled++
    } else {
      clean++
    }
  }
  firstEvents.sort((a, b) => a - b)
  return {
    streams: options.streams,
    clean,
    stalled,
    failed,
    firstError,
    maxGapMs,
    maxFirstEventMs: firstEvents.at(-1) ?? 0,
    p99FirstEventMs: firstEvents[Math.min(firstEvents.length - 1, Math.ceil(firstEvents.length * 0.99) - 1)] ?? 0,
    generatorCpuUs: cpu.user + cpu.system,
    wallMs,
    interrupted,
  }
}
