import { Buffer } from 'node:buffer'
import process from 'node:process'
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

type LoggerInternals = Record<symbol, unknown> & {
  isLevelEnabled (level: string): boolean
  levels: { values: Record<string, number> }
}

export interface ExchangeFacts {
  upstreamRequestId: string | undefined
  reusedSocket: boolean
  retried: boolean
}


/**
 * The request line is encoded byte by byte, straight into the batch it is written with
 * (docs/performance.md, change 42): no piece, number or line string is made, and no UTF-8
 * copy of a joined line follows. Text that needs JSON escaping, and non-ASCII text, goes
 * through `JSON.stringify` and `Buffer#write`, as before; such lines are rare.
 *
 * `out` and `at` are where the line being encoded goes; they are set by `logRequest` and
 * used only inside it (one line at a time: nothing here waits).
 */
let out: Buffer = Buffer.allocUnsafe(0)
let at = 0
/** Lines for a stream other than a BatchedDestination (or too long for its batch) are encoded here. */
let scratch: Buffer = Buffer.allocUnsafe(4096)

/** Bytes a number takes at most, as `JSON.stringify(n)` writes it (`-1.2345678901234567e+300`). */
const NUMBER_BYTES = 26

/** ASCII text, copied as it is (the key names and literals of the line). */
function ascii (text: string): Uint8Array {
  return Buffer.from(text, 'latin1')
}

const TIME = ascii(',"time":')
/** pino's default time function (`,"time":` and `Date.now()`): its line piece is written here from the number. */
const epochTime = pino.stdTimeFunctions.epochTime

const METHOD = ascii(',"method":')
const PATH = ascii(',"path":')
const ROUTE = ascii(',"route":')
const STATUS = ascii(',"status":')
const DURATION = ascii(',"duration_ms":')
const TTFB = ascii(',"ttfb_ms":')
const TTFT = ascii(',"ttft_ms":')
const OVERHEAD = ascii(',"overhead_ms":')
const MODEL = ascii(',"model":')
const INPUT_TOKENS = ascii(',"input_tokens":')
const OUTPUT_TOKENS = ascii(',"output_tokens":')
const BYTES_OUT = ascii(',"bytes_out":')
const STREAM_TRUE = ascii(',"stream":true,"upstream_request_id":')
const STREAM_FALSE = ascii(',"stream":false,"upstream_request_id":')
const REUSED_TRUE = ascii(',"reused_socket":true')
const REUSED_FALSE = ascii(',"reused_socket":false')
const RETRIED_TRUE = ascii(',"retried":true,"error_code":')
const RETRIED_FALSE = ascii(',"retried":false,"error_code":')
const END = ascii(',"msg":"request"}\n')
const NULL = ascii('null')
/** Every constant piece of one line, the longer of each pair. */
const CONSTANT_BYTES = [METHOD, PATH, ROUTE, STATUS, DURATION, TTFB, TTFT, OVERHEAD, MODEL, INPUT_TOKENS, OUTPUT_TOKENS,
  BYTES_OUT, STREAM_FALSE, REUSED_FALSE, RETRIED_FALSE, END].reduce((sum, piece) => sum + piece.length, 0)

function putBytes (bytes: Uint8Array): void {
  const target = out
  let to = at
  for (let i = 0; i < bytes.length; i++) target[to++] = bytes[i] as number
  at = to
}

/** Text written as it is, in UTF-8 (pino's level label, time and bindings: JSON already). */
function putRaw (text: string): void {
  const target = out
  let to = at
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) {
      at += target.write(text, at, 'utf8')
      return
    }
    target[to++] = code
  }
  at = to
}

/** A JSON string, or null. Plain values (no quote, backslash, control or non-ASCII character) are copied as they are. */
function putText (value: string | undefined | null): void {
  if (value === undefined || value === null) {
    putBytes(NULL)
    return
  }
  const target = out
  let to = at
  target[to++] = 0x22
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x20 || code === 0x22 || code === 0x5c || code > 0x7e) {
      at += target.write(JSON.stringify(value), at, 'utf8')
      return
    }
    target[to++] = code
  }
  target[to++] = 0x22
  at = to
}

/** Bytes `putText` may write for `value`: six per UTF-16 unit (`\u001f`) and the quotes. */
function textBytes (value: string | undefined | null): number {
  return value === undefined || value === null ? 4 : value.length * 6 + 2
}

/** Digits of a non-negative safe integer, written as `String(value)` writes them. */
function putDigits (value: number): void {
  let digits = 1
  for (let power = 10; power <= value; power *= 10) digits++
  const target = out
  let to = at + digits
  at = to
  let rest = value
  do {
    const digit = rest % 10
    target[--to] = 48 + digit
    rest = (rest - digit) / 10
  } while (rest !== 0)
}

/** A number as `JSON.stringify(value)` writes it; integers from 0 to 2^53 are written from their digits. */
function putNumber (value: number): void {
  if (Number.isSafeInteger(value) && value >= 0) putDigits(value)
  else putRaw(JSON.stringify(value))
}

/**
 * Milliseconds rounded to the microsecond, as `String(Math.round(value * 1000) / 1000)` writes
 * them, written from integers (V8's double-to-string conversion was 1.6 % of the proxy's CPU),
 * trailing zeros dropped as in the shortest round-trip form (12.300 → 12.3); null when negative.
 */
function putMs (value: number): void {
  if (value < 0) {
    putBytes(NULL)
    return
  }
  const micros = Math.round(value * 1000)
  if (!Number.isSafeInteger(micros)) {
    putNumber(micros / 1000)
    return
  }
  const fraction = micros % 1000
  putDigits((micros - fraction) / 1000)
  if (fraction === 0) return
  const target = out
  const tens = fraction % 100
  target[at++] = 0x2e
  target[at++] = 48 + (fraction - tens) / 100
  if (tens === 0) return
  const units = tens % 10
  target[at++] = 48 + (tens - units) / 10
  if (units !== 0) target[at++] = 48 + units
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
  // `info`'s value is the logger's own (30 unless its custom levels say otherwise).
  const level = (logger[lsCacheSym] as Record<number, string | undefined>)[logger.levels.values.info as number] ?? ''
  const timeFunction = logger[timeSym] as () => string
  // The default time is written as digits straight from Date.now(): pino's piece is a string made
  // and concatenated per line, which was then read back a character at a time.
  const now = timeFunction === epochTime ? Date.now() : -1
  const time = now < 0 ? timeFunction() : ''
  const bindings = logger[chindingsSym] as string
  const upstreamRequestId = exchange?.upstreamRequestId
  const model = usage?.model
  const bound = CONSTANT_BYTES + TIME.length + NUMBER_BYTES + (level.length + time.length + bindings.length + record.route.length) * 3 +
    textBytes(record.method) + textBytes(record.path) + textBytes(model) + textBytes(upstreamRequestId) +
    textBytes(record.errorCode) + 8 * NUMBER_BYTES
  const stream = logger[streamSym] as { write (line: string): unknown }
  const batch = stream instanceof BatchedDestination ? stream.reserve(bound) : null
  if (batch !== null) {
    out = batch
    at = (stream as BatchedDestination).length
  } else {
    if (scratch.length < bound) scratch = Buffer.allocUnsafe(Math.max(bound, scratch.length * 2))
    out = scratch
    at = 0
  }
  const start = at
  putRaw(level)
  if (now < 0) putRaw(time)
  else {
    putBytes(TIME)
    putDigits(now)
  }
  putRaw(bindings)
  putBytes(METHOD)
  putText(record.method)
  putBytes(PATH)
  putText(record.path)
  putBytes(ROUTE)
  out[at++] = 0x22
  putRaw(record.route)
  out[at++] = 0x22
  putBytes(STATUS)
  putNumber(record.status)
  putBytes(DURATION)
  putMs(record.durationMs)
  putBytes(TTFB)
  putMs(record.ttfbMs)
  putBytes(TTFT)
  putMs(record.ttftMs)
  putBytes(OVERHEAD)
  putMs(record.overheadMs)
  putBytes(MODEL)
  putText(model)
  putBytes(INPUT_TOKENS)
  if (tokens === undefined) putBytes(NULL)
  else putNumber(tokens.inputTokens)
  putBytes(OUTPUT_TOKENS)
  if (tokens === undefined) putBytes(NULL)
  else putNumber(tokens.outputTokens)
  putBytes(BYTES_OUT)
  putNumber(record.bytesOut)
  putBytes(record.isStream ? STREAM_TRUE : STREAM_FALSE)
  putText(upstreamRequestId)
  putBytes(exchange?.reusedSocket === true ? REUSED_TRUE : REUSED_FALSE)
  putBytes(exchange?.retried === true ? RETRIED_TRUE : RETRIED_FALSE)
  putText(record.errorCode)
  putBytes(END)
  const line = out
  // Nothing is kept from one line to the next but the buffers themselves.
  out = scratch
  if (batch !== null) (stream as BatchedDestination).commit(at)
  else stream.write(line.toString('utf8', start, at))
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
  /**
   * A line is written at most this long after it was logged (ms), by a timer that runs only
   * while lines wait: an idle server does not wake for its log. 0: only when a batch fills, on
   * `flush()` and at exit. Default 0.
   */
  flushAfterMs?: number
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
  readonly #flushAfterMs: number
  /** Made once, re-armed (`refresh()`) by the first line after it fired. */
  #flushTimer: NodeJS.Timeout | null = null
  #flushArmed = false
  /** Lines dropped because the fd stayed full, or failed. */
  dropped = 0

  constructor (options: BatchedDestinationOptions) {
    this.#fd = options.fd
    this.#batchBytes = options.batchBytes
    this.#maxPendingBytes = options.maxPendingBytes ?? 8 * 1024 * 1024
    this.#flushAfterMs = options.flushAfterMs ?? 0
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
    else if (!this.#flushArmed) this.#armFlush()
    return true
  }

  /**
   * Room for a line of at most `bytes`, encoded in place: the batch buffer, to be written from
   * `length` on and then handed back with `commit`. null when the line must go through `write`
   * (longer than a batch holds, or the pending limit reached, which `write` counts).
   */
  reserve (bytes: number): Buffer | null {
    if (this.#buffer.length - this.#length >= bytes) return this.#buffer
    if (bytes > this.#buffer.length) return null
    this.#rotate()
    if (this.#pendingBytes + bytes > this.#maxPendingBytes) return null
    return this.#buffer
  }

  /** Where a reserved line starts. */
  get length (): number {
    return this.#length
  }

  /** A reserved line was encoded up to `end` (exclusive). */
  commit (end: number): void {
    this.#length = end
    if (end >= this.#batchBytes) this.flush()
    else if (!this.#flushArmed) this.#armFlush()
  }

  #armFlush (): void {
    if (this.#flushAfterMs === 0) return
    this.#flushArmed = true
    if (this.#flushTimer === null) this.#flushTimer = setTimeout(this.#onFlushTimer, this.#flushAfterMs).unref()
    else this.#flushTimer.refresh()
  }

  #onFlushTimer = (): void => {
    this.#flushArmed = false
    this.flush()
  }

  /** Write every pending batch now, as far as the fd takes it without waiting. */
  flush (): void {
    this.#rotate()
    this.#drain(false)
  }

  /** At exit: write what is pending, retrying a full fd a bounded number of times. */
  flushSync (): void {
    if (this.#flushTimer !== null) {
      clearTimeout(this.#flushTimer)
      this.#flushTimer = null
      this.#flushArmed = false
    }
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
