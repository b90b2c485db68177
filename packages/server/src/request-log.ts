import { write as fsWrite, writeSync } from 'node:fs'
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

function ms (value: number): string {
  return value < 0 ? 'null' : String(Math.round(value * 1000) / 1000)
}

/** JSON string, or null. Plain values (no quote, backslash or control character) skip JSON.stringify. */
function text (value: string | undefined | null): string {
  if (value === undefined || value === null) return 'null'
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x20 || code === 0x22 || code === 0x5c || code > 0x7e) return JSON.stringify(value)
  }
  return '"' + value + '"'
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
  const line = (logger[lsCacheSym] as Record<number, string>)[INFO] + (logger[timeSym] as () => string)() + (logger[chindingsSym] as string) +
    ',"method":' + text(record.method) +
    ',"path":' + text(record.path) +
    ',"route":"' + record.route +
    '","status":' + record.status +
    ',"duration_ms":' + ms(record.durationMs) +
    ',"ttfb_ms":' + ms(record.ttfbMs) +
    ',"ttft_ms":' + ms(record.ttftMs) +
    ',"overhead_ms":' + ms(record.overheadMs) +
    ',"model":' + text(usage?.model) +
    ',"input_tokens":' + (tokens === undefined ? 'null' : tokens.inputTokens) +
    ',"output_tokens":' + (tokens === undefined ? 'null' : tokens.outputTokens) +
    ',"bytes_out":' + record.bytesOut +
    ',"stream":' + record.isStream +
    ',"upstream_request_id":' + text(exchange?.upstreamRequestId) +
    ',"reused_socket":' + (exchange?.reusedSocket ?? false) +
    ',"retried":' + (exchange?.retried ?? false) +
    ',"error_code":' + text(record.errorCode) +
    ',"msg":"request"}\n'
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
}

/**
 * An asynchronous log destination: each line is encoded once, straight into a
 * preallocated batch buffer, and a full batch goes out in one `fs.write()` (the
 * owner also calls `flush()` on a timer, and `flushSync()` at exit). Writes never
 * overlap, so lines keep their order; a busy or non-blocking fd (EAGAIN) is retried.
 */
export class BatchedDestination {
  readonly #fd: number
  readonly #batchBytes: number
  #buffer: Buffer
  #length = 0
  /** Batches waiting for the write in flight. */
  readonly #pending: Buffer[] = []
  #writing = false

  constructor (options: BatchedDestinationOptions) {
    this.#fd = options.fd
    this.#batchBytes = options.batchBytes
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
    if (line.length * 3 > room && Buffer.byteLength(line) > room) {
      this.#rotate()
      if (Buffer.byteLength(line) > this.#buffer.length) {
        this.#pending.push(Buffer.from(line))
        this.flush()
        return true
      }
    }
    this.#length += this.#buffer.write(line, this.#length, 'utf8')
    if (this.#length >= this.#batchBytes) this.flush()
    return true
  }

  /** Start writing what is pending (no-op while a write is in flight; it continues after). */
  flush (): void {
    if (this.#writing) return
    if (this.#length !== 0) this.#rotate()
    const next = this.#pending.length === 1 ? this.#pending.pop() as Buffer : this.#pending.length === 0 ? null : Buffer.concat(this.#pending.splice(0))
    if (next === null) return
    this.#writing = true
    this.#writeOut(next, 0)
  }

  #writeOut (data: Buffer, offset: number): void {
    fsWrite(this.#fd, data, offset, data.length - offset, null, (error, written) => {
      if (error !== null) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => { this.#writeOut(data, offset) }, 10).unref()
          return
        }
        // Nowhere left to report a broken log fd: drop this batch, keep serving.
        this.#writing = false
        return
      }
      if (offset + written < data.length) {
        this.#writeOut(data, offset + written)
        return
      }
      this.#writing = false
      if (this.#pending.length !== 0 || this.#length >= this.#batchBytes) this.flush()
    })
  }

  /** Move the current batch to the pending list and start a fresh buffer. */
  #rotate (): void {
    if (this.#length === 0) return
    this.#pending.push(this.#buffer.subarray(0, this.#length))
    this.#buffer = Buffer.allocUnsafe(this.#batchBytes * 2)
    this.#length = 0
  }

  /** Write everything pending now (at exit). A write already in flight finishes on its own. */
  flushSync (): void {
    this.#rotate()
    for (const batch of this.#pending.splice(0)) {
      let offset = 0
      while (offset < batch.length) {
        try {
          offset += writeSync(this.#fd, batch, offset, batch.length - offset)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return
        }
      }
    }
  }
}
