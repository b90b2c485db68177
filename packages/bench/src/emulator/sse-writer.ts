import type { ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { createBrotliCompress, createGzip, constants as zlibConstants } from 'node:zlib'
import type { EmulatorEncoding } from './controls.js'

export interface SseWriteOptions {
  paceMs: number
  stallAfterEvents: number | null
  stallMs: number
  errorAfterEvents: number | null
  dropAfterEvents: number | null
  encoding: EmulatorEncoding | null
  /** The complete `event: error` frame sent for `errorAfterEvents`. */
  errorEvent: Buffer
  /** Aborted when the response closes; stops writing and cancels pending delays. */
  signal: AbortSignal
  /** Destroys the socket without a terminating chunk (`dropAfterEvents`). */
  drop: () => void
}

/** Where encoded SSE bytes go; `write` resolves once the bytes reached the socket. */
interface EventSink {
  write(chunk: Buffer): Promise<void>
  /** Resolves once the headers and every byte produced so far reached the socket. */
  settle(): Promise<void>
  end(): Promise<void>
}

const EMPTY = Buffer.alloc(0)

/**
 * Runs `start` and resolves when it calls back or `signal` aborts, whichever
 * comes first, so no await outlives a closed response.
 */
function untilDoneOrAborted(signal: AbortSignal, start: (done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve()
      return
    }
    const done = (): void => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
    start(done)
  })
}

function whenWritten(response: ServerResponse, chunk: Buffer, signal: AbortSignal): Promise<void> {
  return untilDoneOrAborted(signal, (done) => response.write(chunk, () => done()))
}

function plainSink(response: ServerResponse, signal: AbortSignal): EventSink {
  return {
    write: (chunk) => whenWritten(response, chunk, signal),
    // An empty write sends pending headers and calls back after everything before it.
    settle: () => whenWritten(response, EMPTY, signal),
    end: async () => {
      response.end()
    },
  }
}

/**
 * Compresses into `response`, flushing the compressor after every event
 * (Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH) so each event is decodable on arrival.
 */
function compressedSink(response: ServerResponse, encoding: EmulatorEncoding, signal: AbortSignal): EventSink {
  const compressor = encoding === 'gzip' ? createGzip() : createBrotliCompress()
  const flushKind = encoding === 'gzip' ? zlibConstants.Z_SYNC_FLUSH : zlibConstants.BROTLI_OPERATION_FLUSH
  let written: Promise<void> = Promise.resolve()
  compressor.on('data', (chunk: Buffer) => {
    written = whenWritten(response, chunk, signal)
  })
  compressor.on('error', () => response.destroy())
  signal.addEventListener('abort', () => compressor.destroy(), { once: true })
  return {
    write: async (chunk) => {
      compressor.write(chunk)
      await untilDoneOrAborted(signal, (done) => compressor.flush(flushKind, done))
      await written
    },
    settle: async () => {
      await new Promise<void>((resolve) => setImmediate(resolve))
      await written
      await whenWritten(response, EMPTY, signal)
    },
    end: async () => {
      await untilDoneOrAborted(signal, (done) => {
        compressor.once('end', done)
        compressor.end()
      })
      await written
      if (!signal.aborted) response.end()
    },
  }
}

function clamp(value: number | null, max: number): number {
  return value === null ? -1 : Math.min(value, max)
}

/**
 * Writes `events` one at a time, applying pacing, a stall, a mid-stream error
 * frame or a socket drop after the configured number of events. Thresholds
 * beyond the stream length act after the last event. Response headers must
 * already be set; returns when the response ended, was dropped or closed.
 */
export async function writeSseEvents(response: ServerResponse, events: readonly Buffer[], options: SseWriteOptions): Promise<void> {
  const { signal } = options
  const stallAfter = options.stallMs > 0 ? clamp(options.stallAfterEvents, events.length) : -1
  const errorAfter = clamp(options.errorAfterEvents, events.length)
  const dropAfter = clamp(options.dropAfterEvents, events.length)
  if (options.encoding === null && options.paceMs > 0 && stallAfter === -1 && errorAfter === -1 && dropAfter === -1) {
    return writePaced(response, events, options.paceMs)
  }
  const sink = options.encoding === null ? plainSink(response, signal) : compressedSink(response, options.encoding, signal)
  for (let index = 0; index <= events.length; index++) {
    if (index === stallAfter) await delay(options.stallMs, undefined, { signal })
    if (index === errorAfter) {
      await sink.write(options.errorEvent)
      if (!signal.aborted) await sink.end()
      return
    }
    if (index === dropAfter) {
      await sink.settle()
      options.drop()
      return
    }
    const event = events[index]
    if (event === undefined) break
    if (index > 0 && options.paceMs > 0) await delay(options.paceMs, undefined, { signal })
    await sink.write(event)
    if (signal.aborted) return
  }
  await sink.end()
}

/**
 * The common benchmark case (plain, paced, no faults): one Timeout per stream,
 * re-armed with `refresh()` after each event, so an event costs one `write()`
 * and no allocation, instead of a promise-based timer with an abort signal per
 * event. The first event goes out at once; then exactly `paceMs` between events.
 */
function writePaced(response: ServerResponse, events: readonly Buffer[], paceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (events.length > 0) response.write(events[0] as Buffer)
    if (events.length <= 1) {
      response.end()
      resolve()
      return
    }
    let next = 1
    const timer = setTimeout(() => {
      if (response.destroyed) {
        resolve()
        return
      }
      response.write(events[next++] as Buffer)
      if (next === events.length) {
        response.end()
        resolve()
        return
      }
      timer.refresh()
    }, paceMs)
  })
}
