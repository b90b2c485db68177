import { writeSync } from 'node:fs'
import pino from 'pino'
import type { RequestRecord } from './metrics.js'

/**
 * The per-request log line, and the destination lines are batched into.
 *
 * Both replace general-purpose machinery on the one line written for every request,
 * because the profile showed it (docs/performance.md, change 9): pino's generic
 * serialiser walked the line's 17 keys one by one (~4 % of the proxy's CPU), and
 * sonic-boom re-measured its pending string with `Buffer.byteLength` on every write and
 * converted it again at flush (~6 %). Every other line still goes through pino.
 */

const { chindingsSym, streamSym, timeSym, lsCacheSym } = pino.symbols

type LoggerInternals = Record<symbol, unknown> & { isLevelEnabled (level: string): boolean }

export interface ExchangeFacts {
  upstreamRequestId: string | undefined
  reusedSocket: boolean
  retried: boolean
}

const INFO = 30

/**
 * Milliseconds rounded to the microsecond, as `String(Math.round(value * 1000) / 1000)` writes
 * them, built from integers (V8's double-to-string conversion was 1.6 % of the proxy's CPU).
 */
function ms (value: number): string {
  if (value < 0) return 'null'
  const micros = Math.round(value * 1000)
  const whole = Math.floor(micros / 1000)
  let fraction = micros - whole * 1000
  if (fraction === 0) return String(whole)
  // Trailing zeros are dropped, as in the shortest round-trip form: 12.300 → 12.3.
  let digits = 3
  while (fraction % 10 === 0) {
    fraction /= 10
    digits--
  }
  const text = String(fraction)
  return whole + (text.length < digits ? '.' + '00'.slice(0, digits - text.length) + text : '.' + text)
}

/**
 * The pieces of a request line, in one array reused for every line: joined, they make the line as
 * one flat string. Built with `+`, the line was a chain of about forty concatenations, and writing
 * it copied it flat once more: 2 KB of garbage a request, now about 0.5 KB.
 */
const parts: string[] = []
/** Pieces the longest line has (every string field quoted, in three pieces); unused ones are ''. */
const MAX_PARTS = 48
for (let i = 0; i < MAX_PARTS; i++) parts.push('')

/** Sets a JSON string, or null, at `at`; returns the next free index. Plain values (no quote, backslash or control character) skip JSON.stringify. */
function putText (at: number, value: string | undefined | null): number {
  if (value === undefined || value === null) {
    parts[at] = 'null'
    return at + 1
  }
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x20 || code === 0x22 || code === 0x5c || code > 0x7e) {
      parts[at] = JSON.stringify(value)
      return at + 1
    }
  }
  parts[at] = '"'
  parts[at + 1] = value
  parts[at + 2] = '"'
  return at + 3
}

/**
 * Write the request line through the logger's own stream, exactly as
 * `log.info({ method, path, ... }, 'request')` would: the logger's level, time
 * function, bindings (pid, hostname, a child's reqId) and stream are used as they are.
 */
export function logRequest (log: object, record: RequestRecord, exchange: ExchangeFacts | null): void {
  const logger = log as LoggerInternals
  // Fastify's stand-in when logging is off has no level API: nothing to write.
  if (typeof logger.isLevelEnabled !== 'function' || !logger.isLevelEnabled('info')) return
  const usage = record.usage
  const tokens = usage?.usage
  parts[0] = (logger[lsCacheSym] as Record<number, string>)[INFO] as string
  parts[1] = (logger[timeSym] as () => string)()
  parts[2] = logger[chindingsSym] as string
  parts[3] = ',"method":'
  let at = putText(4, record.method)
  parts[at++] = ',"path":'
  at = putText(at, record.path)
  parts[at++] = ',"route":"'
  parts[at++] = record.route
  parts[at++] = '","status":'
  parts[at++] = String(record.status)
  parts[at++] = ',"duration_ms":'
  parts[at++] = ms(record.durationMs)
  parts[at++] = ',"ttfb_ms":'
  parts[at++] = ms(record.ttfbMs)
  parts[at++] = ',"ttft_ms":'
  parts[at++] = ms(record.ttftMs)
  parts[at++] = ',"overhead_ms":'
  parts[at++] = ms(record.overheadMs)
  parts[at++] = ',"model":'
  at = putText(at, usage?.model)
  parts[at++] = ',"input_tokens":'
  parts[at++] = tokens === undefined ? 'null' : String(tokens.inputTokens)
  parts[at++] = ',"output_tokens":'
  parts[at++] = tokens === undefined ? 'null' : String(tokens.outputTokens)
  parts[at++] = ',"bytes_out":'
  parts[at++] = String(record.bytesOut)
  parts[at++] = record.isStream ? ',"stream":true,"upstream_request_id":' : ',"stream":false,"upstream_request_id":'
  at = putText(at, exchange?.upstreamRequestId)
  parts[at++] = exchange?.reusedSocket === true ? ',"reused_socket":true' : ',"reused_socket":false'
  parts[at++] = exchange?.retried === true ? ',"retried":true,"error_code":' : ',"retried":false,"error_code":'
  at = putText(at, record.errorCode)
  parts[at++] = ',"msg":"request"}\n'
  const line = parts.join('')
  // Every piece back to '' (the unused ones already are): the next line may be shorter, and this
  // line's strings (a path, a request id) are not kept until then.
  for (let i = 0; i < at; i++) parts[i] = ''
  ;(logger[streamSym] as { write (line: string): unknown }).write(line)
}

const live = new Set<BatchedDestination>()
let exitHookInstalled = false
function flushAllAtExit (): void {
  for (const destination of live) destination.flushSync()
}

export interface BatchedDestinationOptions {
  /** File descriptor, e.g. 1 for stdout. */
  fd: number
  /** Lines are written once this many bytes are pending. */
  batchBytes: number
  /** Lines waiting for a full non-blocking fd beyond this many bytes are dropped (and counted). Default 8 MiB. */
  maxPendingBytes?: number
}

/** EAGAIN retries at exit before what is left is given up (a reader that never drains must not hang exit). */
const EXIT_RETRIES = 1000
const RETRY_MS = 10

/**
 * A batching log destination: each line is encoded once, straight into a preallocated
 * batch buffer, and a full batch (or what the owner's timer finds, or what is left at
 * exit) goes out in one synchronous `write()`.
 *
 * Synchronous on purpose: one syscall per 16 KiB batch. The asynchronous `fs.write` this
 * replaced cost a thread-pool hand-off per batch whose context switches landed on the
 * proxy's own core (3.8 % of its CPU; docs/performance.md, change 12). A blocking fd behaves
 * as Node's own stdout does on Linux. A non-blocking fd that is full (EAGAIN: a slow reader
 * on a pipe) is never waited for: the batch stays pending and is retried 10 ms later, and
 * beyond `maxPendingBytes` new lines are dropped and counted in `dropped`.
 */
export class BatchedDestination {
  readonly #fd: number
  readonly #batchBytes: number
  readonly #maxPendingBytes: number
  #buffer: Buffer
  #length = 0
  /** Full batches a full fd has not taken yet, and how far the first one got. */
  readonly #pending: Buffer[] = []
  #pendingBytes = 0
  #offset = 0
  #retry: NodeJS.Timeout | null = null
  /** Lines dropped because the fd stayed full, or failed. */
  dropped = 0

  constructor (options: BatchedDestinationOptions) {
    this.#fd = options.fd
    this.#batchBytes = options.batchBytes
    this.#maxPendingBytes = options.maxPendingBytes ?? 8 * 1024 * 1024
    this.#buffer = Buffer.allocUnsafe(options.batchBytes * 2)
    // Lines logged after the server closed (the last shutdown line, a second signal) still reach
    // the fd: one exit handler for every open destination writes what is pending.
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.once('exit', flushAllAtExit)
    }
    live.add(this)
  }

  write (line: string): boolean {
    const room = this.#buffer.length - this.#length
    // A UTF-8 character takes at most 3 bytes per UTF-16 unit: measure only when it might not fit.
    if (line.length * 3 > room) {
      const bytes = Buffer.byteLength(line)
      if (bytes > room) {
        this.#rotate()
        if (this.#pendingBytes + bytes > this.#maxPendingBytes) {
          this.dropped++
          return true
        }
        if (bytes > this.#buffer.length) {
          this.#queue(Buffer.from(line))
          this.flush()
          return true
        }
      }
    }
    this.#length += this.#buffer.write(line, this.#length, 'utf8')
    if (this.#length >= this.#batchBytes) this.flush()
    return true
  }

  /** Write every pending batch now, as far as the fd takes it without waiting. */
  flush (): void {
    this.#rotate()
    this.#drain(false)
  }

  /** At exit: write what is pending, retrying a full fd a bounded number of times. */
  flushSync (): void {
    this.#rotate()
    for (let attempt = 0; attempt < EXIT_RETRIES && this.#pending.length !== 0; attempt++) this.#drain(true)
  }

  #queue (batch: Buffer): void {
    this.#pending.push(batch)
    this.#pendingBytes += batch.length
  }

  /** Move the current batch to the pending list and start a fresh buffer. */
  #rotate (): void {
    if (this.#length === 0) return
    if (this.#pendingBytes + this.#length > this.#maxPendingBytes) {
      this.dropped += countLines(this.#buffer, this.#length)
    } else {
      this.#queue(this.#buffer.subarray(0, this.#length))
      this.#buffer = Buffer.allocUnsafe(this.#batchBytes * 2)
    }
    this.#length = 0
  }

  #drain (atExit: boolean): void {
    while (this.#pending.length !== 0) {
      const batch = this.#pending[0] as Buffer
      let written: number
      try {
        written = writeSync(this.#fd, batch, this.#offset, batch.length - this.#offset)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          if (!atExit && this.#retry === null) {
            this.#retry = setTimeout(() => {
              this.#retry = null
              this.#drain(false)
            }, RETRY_MS).unref()
          }
          return
        }
        // Nowhere left to report a broken log fd: drop what is pending, keep serving.
        for (const dropped of this.#pending.splice(0)) this.dropped += countLines(dropped, dropped.length)
        this.#pendingBytes = 0
        this.#offset = 0
        return
      }
      this.#offset += written
      if (this.#offset === batch.length) {
        this.#pending.shift()
        this.#pendingBytes -= batch.length
        this.#offset = 0
      }
    }
  }
}

function countLines (buffer: Buffer, length: number): number {
  let lines = 0
  for (let at = buffer.indexOf(10); at !== -1 && at < length; at = buffer.indexOf(10, at + 1)) lines++
  return lines
}
