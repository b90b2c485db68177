import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import process from 'node:process'
import { ServerResponse, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { Dispatcher } from 'undici'
import { AdapterError, isStaleSocketError, toAdapterError } from './errors.js'
import { copyResponseHeaders, type ResponseHeaderFacts, type ResponseHeaders, responseHeadLength, writeResponseHead } from './headers.js'
import type { ResolvedUpstreamOptions } from './options.js'
import { ResponseHead } from './response-reader.js'

/** What the owner of an exchange sees when it ends (the handler itself, read-only). */
export interface Exchange {
  /** Upstream status, or 0 when no response arrived. */
  readonly statusCode: number
  /** performance.now() when the request was received (given by the caller), else at dispatch. */
  readonly startedAt: number
  /** performance.now() when the request got its upstream socket and was written (onConnect). */
  readonly sentAt: number
  /** performance.now() when upstream response headers arrived, and when they were written to the client. */
  readonly headersAt: number
  readonly headersWrittenAt: number
  readonly endedAt: number
  /**
   * Time the proxy itself added, ms: received → sent upstream, plus upstream headers → client
   * headers. On a new connection the first part includes connection set-up. -1 until headers.
   */
  readonly overheadMs: number
  /** What `onResponseStart` returned, for the owner to finish reading. */
  readonly observer: ResponseObserver | undefined
  /** Response body bytes written to the client (as received: compressed bytes stay compressed). */
  readonly bytesOut: number
  readonly upstreamRequestId: string | undefined
  readonly isEventStream: boolean
  readonly contentEncoding: string | undefined
  /** The request went out on a keep-alive socket that had served an earlier request. */
  readonly reusedSocket: boolean
  /** The request was replayed once after a stale pooled socket failed. */
  readonly retried: boolean
  /** Why the exchange failed, or null. */
  readonly error: AdapterError | null
  /** Response headers were sent to the client: after a failure only the stream could be ended. */
  readonly headersSent: boolean
  /** The client went away before the response finished. */
  readonly clientAborted: boolean
}

/** A side observer of the response bytes: it sees each chunk after it was written to the client. */
export interface ResponseObserver {
  /**
   * With `copiesData`, `chunk` may be a view of a buffer that is reused once the call returns:
   * the observer copies whatever it keeps. Without it, chunks are the observer's to keep.
   */
  data (chunk: Buffer): void
  readonly copiesData?: boolean
}

export interface ExchangeHooks {
  /**
   * Called once when upstream headers arrive, before they are written to the client. It may
   * return an observer that taps the body (never altering or delaying it).
   */
  onResponseStart?: ((exchange: Exchange) => ResponseObserver | undefined) | undefined
}

/** Owner-side hooks; implemented by the upstream client. */
export interface HandlerOwner {
  dispatch (opts: Dispatcher.DispatchOptions, handler: ForwardHandler): boolean
  settle (handler: ForwardHandler): void
  notePending (handler: ForwardHandler): void
}

/** `_header` of a response whose head was written directly (see #writeHeadDirect). */
const HEAD_WRITTEN = 'HTTP/1.1 (head written directly)\r\n\r\n'
const kHandler = Symbol('apt.forwardHandler')

interface ResponseWithHandler extends ServerResponse { [kHandler]?: ForwardHandler | undefined }

function onResponseClose (this: ResponseWithHandler): void {
  const handler = this[kHandler]
  if (handler !== undefined) handler.clientClosed()
}

/**
 * One proxied exchange, implementing undici's dispatch handler protocol
 * (onConnect / onHeaders / onData / onComplete / onError), which undici 7
 * drives natively. Bytes are written to the client as they arrive; upstream
 * reads pause when the client's socket is full (back-pressure).
 */
export class ForwardHandler implements Exchange {
  statusCode = 0
  startedAt = 0
  sentAt = 0
  headersAt = 0
  headersWrittenAt = 0
  endedAt = 0
  bytesOut = 0
  upstreamRequestId: string | undefined = undefined
  isEventStream = false
  contentEncoding: string | undefined = undefined
  reusedSocket = false
  retried = false
  error: AdapterError | null = null
  headersSent = false
  clientAborted = false
  /** Set by the pool-wait timer while the request is queued. */
  poolTimer: NodeJS.Timeout | null = null
  /** @internal this exchange's place among its client's running ones, or -1. */
  runningIndex = -1
  /**
   * @internal where socket reuse is counted: the client's stats. A field, not a WeakMap entry:
   * an entry per request cost a write barrier and the scavenger's ephemeron work (change 42).
   */
  reuseStats: { hits: number, misses: number } | null = null

  readonly #owner: HandlerOwner
  readonly #response: ResponseWithHandler
  /** The request, body included, for the one replay; let go once the response has begun (a stream can last minutes). */
  #opts: Dispatcher.DispatchOptions | null
  readonly #method: string | undefined
  readonly #replayable: boolean
  readonly #callback: (exchange: Exchange) => void
  readonly #hooks: ExchangeHooks | undefined
  readonly #rewrite: ((body: Buffer) => Buffer) | undefined
  #abort: ((error?: Error) => void) | null = null
  #resume: (() => void) | null = null
  #onDrain: (() => void) | null = null
  /** A 'drain' listener is registered and has not fired yet. */
  #awaitingDrain = false
  #settled = false
  #collected: Buffer[] | null = null
  #collectedHeaders: string[] | null = null
  observer: ResponseObserver | undefined = undefined
  readonly #options: ResolvedUpstreamOptions
  /** Direct write: the client socket the response goes to without ServerResponse, or null. */
  #socket: Socket | null = null
  /** Direct write of a body without content-length: each chunk is framed here. */
  #chunked = false
  /** The client socket is corked until the end of this tick (or of this upstream read). */
  #holding = false
  /**
   * The wire engine calls `onReadEnd()` after each upstream read: what a read produces is then
   * written at its end, with no tick queued and, for the usual one event per read, no cork.
   */
  #readEnds = false
  /** The one buffer this read produced so far, written at the read's end (`#readEnds`). */
  #deferred: Buffer | null = null
  /**
   * Direct write of a body with content-length: the head, kept until the first body chunk of
   * this tick so that both leave in one buffer and one write() (or alone at the end of the tick).
   */
  #pendingHead: ResponseHeaders | null = null
  #pendingStatusLine = ''
  #pendingKeepAlive = ''

  constructor (
    owner: HandlerOwner,
    response: ServerResponse,
    opts: Dispatcher.DispatchOptions,
    replayable: boolean,
    callback: (exchange: Exchange) => void,
    hooks: ExchangeHooks | undefined,
    rewrite: ((body: Buffer) => Buffer) | undefined,
    receivedAt: number,
    options: ResolvedUpstreamOptions,
  ) {
    this.#owner = owner
    this.#response = response
    this.#opts = opts
    this.#method = opts.method
    this.#replayable = replayable
    this.#callback = callback
    this.#hooks = hooks
    this.#rewrite = rewrite
    this.startedAt = receivedAt
    this.#options = options
    ;(response as ResponseWithHandler)[kHandler] = this
    response.on('close', onResponseClose)
  }

  start (): void {
    if (!this.#owner.dispatch(this.#opts as Dispatcher.DispatchOptions, this)) this.#owner.notePending(this)
  }

  // --- undici handler protocol -------------------------------------------

  onConnect (abort: (error?: Error) => void): void {
    if (this.poolTimer !== null) {
      clearTimeout(this.poolTimer)
      this.poolTimer = null
    }
    if (this.#settled) {
      // Pool wait timed out or the client left while queued: never send it.
      abort(this.error ?? new AdapterError('APT_ADAPTER_CLIENT_ABORTED', 'The client went away'))
      return
    }
    this.#abort = abort
    this.sentAt = performance.now()
    pendingSocketOwner = this
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[] | string[] | ResponseHead, resume: () => void, statusText: string): boolean {
    if (this.#settled) return false
    this.statusCode = statusCode
    this.headersAt = performance.now()
    this.#resume = resume
    // The wire engine's head carries its facts, and goes to the client as the bytes it arrived as;
    // undici's raw list is copied to strings here.
    let facts: ResponseHeaderFacts
    let list: string[] | null = null
    if (rawHeaders instanceof ResponseHead) {
      facts = rawHeaders
      this.#readEnds = true
    } else {
      facts = { isEventStream: false, contentEncoding: undefined, requestId: undefined, contentType: undefined, hasContentLength: false }
      list = copyResponseHeaders(rawHeaders, facts)
    }
    this.isEventStream = facts.isEventStream
    this.contentEncoding = facts.contentEncoding
    this.upstreamRequestId = facts.requestId
    const hook = this.#hooks?.onResponseStart
    if (hook !== undefined) this.observer = hook(this)
    const response = this.#response
    if (this.#rewrite !== undefined && statusCode < 300 && facts.contentEncoding === undefined &&
        facts.contentType?.startsWith('application/json') === true) {
      this.#collected = []
      this.#collectedHeaders = list ?? (rawHeaders as ResponseHead).list()
      return true
    }
    this.headersSent = true
    // No replay once the head is on its way: the request and its body (a prompt can be megabytes)
    // are not kept for the rest of the response.
    this.#opts = null
    const timing = this.#options.serverTiming ? this.#serverTimingValue() : undefined
    const socket = response.socket as (Socket & { _httpMessage?: unknown }) | null
    if (this.#options.directWrite && socket !== null && socket._httpMessage === response &&
        response.shouldKeepAlive && !response.headersSent) {
      let headers: ResponseHeaders
      if (list !== null) {
        if (timing !== undefined) list.push('server-timing', timing)
        headers = list
      } else {
        const head = rawHeaders as ResponseHead
        if (timing !== undefined) head.extra = `server-timing: ${timing}\r\n`
        headers = head
      }
      this.#writeHeadDirect(socket, statusCode, statusText, headers, facts)
    } else {
      const headers = list ?? (rawHeaders as ResponseHead).list()
      if (timing !== undefined) headers.push('server-timing', timing)
      if (statusText) response.writeHead(statusCode, statusText, headers)
      else response.writeHead(statusCode, headers)
      // The head leaves as it arrived, as on the direct path: a client sees the status at once,
      // even before the first event or a body the upstream sends later. Not flushHeaders() on a
      // ServerResponse: it writes the head as UTF-8, and header values here are raw bytes.
      if (response instanceof ServerResponse) response.write('', 'latin1')
      else (response as { flushHeaders (): void }).flushHeaders()
    }
    this.headersWrittenAt = performance.now()
    return true
  }

  /**
   * Direct write: the response head is built here from the upstream's (already parsed and
   * validated) header lines and written to the client socket, and so is every body chunk,
   * without ServerResponse's per-header validation and bookkeeping (writeHead alone was 3.3 %
   * of the proxy's CPU; docs/performance.md, change 10). The ServerResponse is then
   * marked as having sent its head, so node:http still runs its own end-of-response work
   * (keep-alive, the next request) when it is ended. Used only on a keep-alive connection
   * whose socket belongs to this response (not for pipelined or closing requests).
   */
  #writeHeadDirect (socket: Socket, statusCode: number, statusText: string, headers: ResponseHeaders, facts: ResponseHeaderFacts): void {
    const response = this.#response as ServerResponse & { _header: string | null, _headerSent: boolean }
    const method = this.#method
    const bodiless = method === 'HEAD' || statusCode === 204 || statusCode === 304 || statusCode < 200
    this.#chunked = !bodiless && !facts.hasContentLength
    const statusLine = statusLineOf(statusCode, statusText)
    const keepAlive = keepAliveLines((socket as Socket & { server?: { keepAliveTimeout?: number } }).server?.keepAliveTimeout ?? 0)
    response.statusCode = statusCode
    // node:http only tests `_header` for truth once `_headerSent` is set; the head itself is not
    // kept, or every open stream would hold its ~1 KiB for as long as it lasts.
    response._header = HEAD_WRITTEN
    response._headerSent = true
    this.#socket = socket
    if (bodiless || this.#chunked || facts.isEventStream) {
      const end = this.#chunked ? CHUNKED_END : HEAD_END
      const head = Buffer.allocUnsafe(responseHeadLength(statusLine, headers, keepAlive, end))
      writeResponseHead(head, statusLine, headers, keepAlive, end)
      this.#send(socket, head)
    } else {
      // A JSON message usually arrives whole in the read that carried its head: one buffer, one
      // write() and no corked writev (whose per-chunk bookkeeping allocated ~1.9 KB a request).
      this.#pendingHead = headers
      this.#pendingStatusLine = statusLine
      this.#pendingKeepAlive = keepAlive
      // When the reader says the response ends in this read, its end writes the head (#endDirect):
      // no tick is queued for it (Node's tick object, with its computed keys, costs a runtime call).
      if (!(headers instanceof ResponseHead && headers.completesInRead)) process.nextTick(flushPendingHead, this)
    }
  }

  /** The kept head encoded into a new buffer, with `extra` bytes of room after it; clears it. */
  #takePendingHead (extra: number): Buffer {
    const headers = this.#pendingHead as ResponseHeaders
    this.#pendingHead = null
    const length = responseHeadLength(this.#pendingStatusLine, headers, this.#pendingKeepAlive, HEAD_END)
    const buffer = Buffer.allocUnsafe(length + extra)
    writeResponseHead(buffer, this.#pendingStatusLine, headers, this.#pendingKeepAlive, HEAD_END)
    return buffer
  }

  /** @internal the end of the tick in which the head was built: it goes out alone if no body came. */
  flushPendingHead (): void {
    if (this.#pendingHead === null) return
    const head = this.#takePendingHead(0)
    const socket = this.#socket as Socket
    if (!socket.destroyed) socket.write(head)
  }

  /**
   * Cork the client socket until the end of this tick (as ServerResponse does): everything one
   * upstream read produces (head, events, the final chunk) leaves in one writev.
   */
  #hold (socket: Socket): void {
    if (this.#holding) return
    this.#holding = true
    socket.cork()
    process.nextTick(release, this, socket)
  }

  /**
   * Write `buffer` as part of what this upstream read produces. With the wire engine the first
   * buffer of a read waits for the read's end (`onReadEnd`) and leaves with one plain write();
   * a second one corks the socket and both leave in one writev there. Otherwise as `#hold`.
   * The return value is write()'s, or true while the buffer waits (`onReadEnd` reports it then).
   */
  #send (socket: Socket, buffer: Buffer): boolean {
    if (!this.#readEnds) {
      this.#hold(socket)
      return socket.write(buffer)
    }
    if (this.#holding) return socket.write(buffer)
    if (this.#deferred === null) {
      this.#deferred = buffer
      return true
    }
    this.#flushDeferred(socket)
    return socket.write(buffer)
  }

  /** A buffer waiting for the read's end goes first, corked, before anything else is written. */
  #flushDeferred (socket: Socket): void {
    const deferred = this.#deferred
    if (deferred === null) return
    this.#deferred = null
    if (!this.#holding) {
      this.#holding = true
      socket.cork()
    }
    socket.write(deferred)
  }

  /**
   * @internal the wire engine finished an upstream read: what it produced leaves now. False when
   * the client socket is full (the engine pauses the upstream socket until 'drain').
   */
  onReadEnd (): boolean {
    const socket = this.#socket
    if (socket === null || this.#settled) return true
    let written = true
    const deferred = this.#deferred
    if (deferred !== null) {
      this.#deferred = null
      written = socket.write(deferred)
    } else if (this.#holding) {
      this.#holding = false
      socket.uncork()
      written = socket.writableLength < socket.writableHighWaterMark
    }
    if (written) return true
    this.#awaitDrain(socket)
    return false
  }

  /** @internal the end of a #hold; false when the hold was already released (#endDirect). */
  released (): boolean {
    const holding = this.#holding
    this.#holding = false
    return holding
  }

  /** Direct write of one body chunk (framed when chunked); false when the socket is full. */
  #writeDirect (socket: Socket, chunk: Buffer | string): boolean {
    if (this.#pendingHead !== null) {
      if (typeof chunk !== 'string' && chunk.length <= FRAME_COPY_BYTES) {
        const joined = this.#takePendingHead(chunk.length)
        chunk.copy(joined, joined.length - chunk.length)
        return this.#readEnds ? this.#send(socket, joined) : socket.write(joined)
      }
      this.#send(socket, this.#takePendingHead(0))
    }
    if (!this.#chunked) return typeof chunk === 'string' ? this.#sendString(socket, chunk) : this.#send(socket, chunk)
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    const length = data.length
    if (length === 0) return true
    if (length <= FRAME_COPY_BYTES) {
      // An SSE event: size line, data and CRLF copied into one buffer and one write() call,
      // ~20 % cheaper per event than three corked writes (side measurement, change 13). The
      // size's hex digits are written here: no string and no binding call per event.
      const digits = length < 0x10 ? 1 : length < 0x100 ? 2 : length < 0x1000 ? 3 : 4
      const framed = Buffer.allocUnsafe(digits + length + 4)
      for (let i = digits - 1, rest = length; i >= 0; i--, rest >>>= 4) framed[i] = HEX_DIGITS[rest & 15] as number
      framed[digits] = 13
      framed[digits + 1] = 10
      framed.set(data, digits + 2)
      framed[digits + 2 + length] = 13
      framed[digits + 3 + length] = 10
      return this.#send(socket, framed)
    }
    const size = length.toString(16)
    this.#flushDeferred(socket)
    if (!this.#readEnds) this.#hold(socket)
    socket.cork()
    socket.write(size + '\r\n', 'latin1')
    socket.write(data)
    const written = socket.write('\r\n', 'latin1')
    socket.uncork()
    return written
  }

  /** A string body chunk (an adapter-made body, not a forwarded one): as `#send`. */
  #sendString (socket: Socket, chunk: string): boolean {
    this.#flushDeferred(socket)
    if (!this.#readEnds) this.#hold(socket)
    return socket.write(chunk)
  }

  /** Direct write: finish the body framing, then let node:http finish the response. */
  #endDirect (socket: Socket, last?: string): void {
    if (last !== undefined) this.#writeDirect(socket, last)
    else if (this.#pendingHead !== null) this.flushPendingHead()
    // What this read produced before its end leaves first, with the framing's end in one writev.
    if (this.#deferred !== null && this.#chunked) this.#flushDeferred(socket)
    else if (this.#deferred !== null) {
      const deferred = this.#deferred
      this.#deferred = null
      socket.write(deferred)
    }
    if (this.#chunked) socket.write('0\r\n\r\n', 'latin1') // with what this tick holds, if anything
    // The response's last bytes leave now, not at the end of the tick: the bookkeeping of its end
    // (metrics, the monitor, the log line) runs next in this tick, and the client would wait for
    // it (a stream's final event and its terminator left about a millisecond apart).
    if (this.#holding) {
      this.#holding = false
      socket.uncork()
    }
    this.#response.end()
  }

  /**
   * A body piece that is a view of the wire engine's read buffer (valid during this call only).
   * When it is written by copying (framed as a chunk, or joined with the head) and the observer,
   * if any, copies what it keeps, it goes on as it is; otherwise it is copied first.
   */
  onDataView (view: Buffer): boolean {
    const observer = this.observer
    if (this.#socket !== null && this.#collected === null && view.length <= FRAME_COPY_BYTES &&
        (this.#chunked || this.#pendingHead !== null) && (observer === undefined || observer.copiesData === true)) {
      return this.onData(view)
    }
    return this.onData(Buffer.from(view))
  }

  onData (chunk: Buffer): boolean {
    if (this.#settled) return false
    this.bytesOut += chunk.length
    if (this.#collected !== null) {
      this.#collected.push(chunk)
      return true
    }
    const socket = this.#socket
    const written = socket === null ? this.#response.write(chunk) : this.#writeDirect(socket, chunk)
    const observer = this.observer
    if (observer !== undefined) observer.data(chunk)
    if (written) return true
    this.#awaitDrain(socket)
    return false
  }

  /**
   * Resume the upstream on the client's next 'drain'. One listener per wait: the chunks a single
   * upstream read still delivers after the socket filled up (many small events) must not add one each.
   */
  #awaitDrain (socket: Socket | null): void {
    if (this.#awaitingDrain) return
    this.#awaitingDrain = true
    if (this.#onDrain === null) {
      this.#onDrain = () => {
        this.#awaitingDrain = false
        const resume = this.#resume
        if (resume !== null) resume()
      }
    }
    if (socket === null) this.#response.once('drain', this.#onDrain)
    else socket.once('drain', this.#onDrain)
  }

  onComplete (_trailers: Buffer[] | null): void {
    if (this.#settled) return
    const response = this.#response
    if (this.#collected !== null) {
      const rewritten = (this.#rewrite as (body: Buffer) => Buffer)(Buffer.concat(this.#collected))
      this.#collected = null
      const headers = this.#collectedHeaders as string[]
      let hasLength = false
      for (let i = 0; i < headers.length; i += 2) {
        if ((headers[i] as string).toLowerCase() === 'content-length') {
          headers[i + 1] = String(rewritten.length)
          hasLength = true
        }
      }
      if (!hasLength) headers.push('content-length', String(rewritten.length))
      this.bytesOut = rewritten.length
      this.headersSent = true
      if (this.#options.serverTiming) headers.push('server-timing', this.#serverTimingValue())
      response.writeHead(this.statusCode, headers)
      this.headersWrittenAt = performance.now()
      response.end(rewritten)
      this.observer?.data(rewritten)
    } else if (this.#socket !== null) {
      this.#endDirect(this.#socket)
    } else {
      response.end()
    }
    this.#finish(null)
  }

  onError (error: Error): void {
    if (this.#settled) return
    if (!this.headersSent && this.#collected === null && !this.retried && this.#replayable &&
        this.reusedSocket && isStaleSocketError(error)) {
      // A pooled keep-alive socket died before any response byte: replay once on another connection.
      this.retried = true
      this.reusedSocket = false
      this.#abort = null
      this.start()
      return
    }
    const adapterError = toAdapterError(error)
    if (this.headersSent) this.#endBrokenStream(adapterError)
    this.#finish(adapterError)
  }

  // --- owner-side events ----------------------------------------------------

  /** The client's response closed; if it had not finished, abort upstream at once. */
  clientClosed (): void {
    if (this.#settled || this.#response.writableFinished) return
    this.clientAborted = true
    const error = new AdapterError('APT_ADAPTER_CLIENT_ABORTED', 'The client went away before the response finished')
    const abort = this.#abort
    this.#finish(error)
    if (abort !== null) abort(error)
  }

  /** The bounded wait for a pooled connection ran out. */
  poolTimedOut (): void {
    this.poolTimer = null
    if (this.#settled) return
    this.#finish(new AdapterError('APT_ADAPTER_POOL_TIMEOUT', 'No upstream connection became free in time'))
  }

  /** Abort from the owner (shutdown deadline, body limit...). */
  abort (error: AdapterError): void {
    if (this.#settled) return
    const abort = this.#abort
    if (this.headersSent) this.#endBrokenStream(error)
    this.#finish(error)
    if (abort !== null) abort(error)
  }

  get settled (): boolean {
    return this.#settled
  }

  get overheadMs (): number {
    if (this.headersWrittenAt === 0) return -1
    return (this.sentAt - this.startedAt) + (this.headersWrittenAt - this.headersAt)
  }

  #serverTimingValue (): string {
    const ms = (this.sentAt - this.startedAt) + (performance.now() - this.headersAt)
    return SERVER_TIMING_PREFIX + millisecondsWith3Decimals(ms)
  }

  /**
   * After response headers went out only the stream can carry the failure. An
   * uncompressed SSE stream ends with an Anthropic `event: error` frame; any
   * other body is cut (the client sees a truncated transfer, never a silent
   * "complete" one).
   */
  #endBrokenStream (error: AdapterError): void {
    const response = this.#response
    if (response.destroyed || this.clientAborted) return
    if (this.isEventStream && this.contentEncoding === undefined) {
      const type = error.code === 'APT_ADAPTER_BODY_TIMEOUT' ? 'timeout_error' : 'api_error'
      const body = JSON.stringify({
        type: 'error',
        error: { type, message: `Upstream stream interrupted: ${error.message}` },
        request_id: this.upstreamRequestId ?? null,
      })
      const frame = `event: error\ndata: ${body}\n\n`
      if (this.#socket !== null) this.#endDirect(this.#socket, frame)
      else response.end(frame)
    } else {
      response.destroy(error)
    }
  }

  #finish (error: AdapterError | null): void {
    this.#settled = true
    this.error = error
    this.endedAt = performance.now()
    if (this.poolTimer !== null) {
      clearTimeout(this.poolTimer)
      this.poolTimer = null
    }
    // Not `delete`: that would turn every ServerResponse into a dictionary-mode object.
    this.#response[kHandler] = undefined
    this.#response.removeListener('close', onResponseClose)
    this.#owner.settle(this)
    this.#callback(this)
  }
}

/**
 * undici calls `onConnect` and then publishes `undici:client:sendHeaders`
 * synchronously in the same call, so the handler that was just connected is
 * the one whose socket the channel reports. This is how each request learns
 * whether it rides a reused keep-alive socket.
 */
let pendingSocketOwner: ForwardHandler | null = null

const HEAD_END = '\r\n'
const CHUNKED_END = 'transfer-encoding: chunked\r\n\r\n'

/** Status lines with the standard reason phrase, made once per status code. */
const statusLines = new Map<number, string>()

function statusLineOf (statusCode: number, statusText: string): string {
  const standard = STATUS_CODES[statusCode]
  if (statusText && statusText !== standard) return 'HTTP/1.1 ' + statusCode + ' ' + statusText + '\r\n'
  let line = statusLines.get(statusCode)
  if (line === undefined) {
    line = 'HTTP/1.1 ' + statusCode + ' ' + (standard ?? 'unknown') + '\r\n'
    statusLines.set(statusCode, line)
  }
  return line
}

/** The lines node:http adds to a keep-alive response, for the server's keep-alive timeout (cached: it rarely changes). */
let keepAliveMs = -1
let keepAliveText = ''
function keepAliveLines (ms: number): string {
  if (ms !== keepAliveMs) {
    keepAliveMs = ms
    keepAliveText = ms > 0 ? `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(ms / 1000)}\r\n` : 'connection: keep-alive\r\n'
  }
  return keepAliveText
}

const SERVER_TIMING_PREFIX = 'proxy;desc="apt overhead";dur='

/**
 * A non-negative duration as `toFixed(3)` writes it, from integers (toFixed was ~1 µs of every
 * request). At an exact half it may round the last digit the other way.
 */
export function millisecondsWith3Decimals (ms: number): string {
  if (!(ms >= 0)) return '0.000'
  if (ms >= 1e9) return ms.toFixed(3)
  const micros = Math.round(ms * 1000)
  const whole = Math.floor(micros / 1000)
  const fraction = micros - whole * 1000
  return whole + (fraction < 10 ? '.00' : fraction < 100 ? '.0' : '.') + fraction
}

/** Chunks up to this size are framed by copying (one write); larger ones by three corked writes. At most four hex digits. */
const FRAME_COPY_BYTES = 16_384

/** The lower-case hex digits of a chunk size line, as `Number.prototype.toString(16)` writes them. */
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0))

function flushPendingHead (handler: ForwardHandler): void {
  handler.flushPendingHead()
}

function release (handler: ForwardHandler, socket: Socket): void {
  if (handler.released()) socket.uncork()
}

export function takePendingSocketOwner (): ForwardHandler | null {
  const owner = pendingSocketOwner
  pendingSocketOwner = null
  return owner
}
