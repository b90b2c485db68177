/**
 * The wire engine: a pool of HTTP/1.1 keep-alive connections to one upstream origin, whose
 * responses are read as bytes by apt's own reader (response-reader.ts), driving the same
 * handler protocol as undici (onConnect / onHeaders / onData / onComplete / onError).
 *
 * Why not undici here: on this proxy's path (one origin, HTTP/1.1, bytes in, bytes out)
 * undici's request objects, handler wrapping and wasm parser cost about 85 µs of CPU per
 * request more than this engine (see docs/performance.md, change 8). undici still carries
 * HTTP/2 (`allowH2`) and stays selectable with `engine: 'undici'`.
 *
 * Errors carry undici's codes (UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT, ...) so both
 * engines share one translation to AdapterError and one stale-socket rule.
 */
import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import net from 'node:net'
import type { Readable } from 'node:stream'
import tls from 'node:tls'
import { headLength, RequestHead, writeEncodedHead, writeHead } from './headers.js'
import { type ResponseHead, ResponseReader, type ResponseTarget } from './response-reader.js'

/** What the pool drives: undici's (legacy) dispatch handler protocol, with the head as read. */
export interface WireHandler {
  onConnect (abort: (error?: Error) => void): void
  onHeaders (statusCode: number, head: ResponseHead, resume: () => void, statusText: string): boolean
  onData (chunk: Buffer): boolean
  /**
   * A body piece that is a view of the shared read buffer, valid only during the call: the
   * handler copies it where it writes it (framing a chunk copies it anyway) instead of it being
   * copied for `onData` first. Without this method the pool copies and calls `onData`.
   */
  onDataView? (view: Buffer): boolean
  /** After each read that went to this handler: what it produced may leave now; false pauses the socket as onData's false does. */
  onReadEnd? (): boolean
  onComplete (trailers: null): void
  onError (error: Error): void
}

export interface WireRequest {
  method: string
  /** Path with query, already prefixed. */
  path: string
  /** Flat [name, value, ...] list, validated by the caller (node:http rawHeaders or checked config), or the lines encoded. */
  headers: readonly string[] | RequestHead
  body: Buffer | Readable | AsyncIterable<Buffer> | null
  /** Send `connection: close` and do not reuse the connection. */
  reset: boolean
}

export interface WirePoolOptions {
  origin: string
  maxConnections: number
  keepAliveTimeoutMs: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  tlsCa: string | Buffer | undefined
  /**
   * Every socket reads into one shared buffer (the socket's `onread`), not through its
   * JavaScript stream ('data' events, a Buffer per read).
   */
  consume: boolean
  /** Called for every request as it is written: whether its socket had served one before. */
  onSend (handler: WireHandler, reused: boolean): void
  onConnectionOpened (): void
}

export interface WirePoolStats { connected: number, free: number, pending: number, queued: number, running: number, size: number }

/** An Error with undici's code, so both engines share one error translation. */
export class WireError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

/** Upstream `Keep-Alive: timeout=N` hints are trusted minus this margin (as undici does). */
const KEEP_ALIVE_MARGIN_MS = 1000
/** Below this size a buffered body is copied behind the head and sent in one write. */
const COALESCE_BYTES = 16_384
const CHUNKED_LINE = 'transfer-encoding: chunked\r\n'
const CLOSE_LINE = 'connection: close\r\n'

interface Exchange {
  readonly handler: WireHandler
  readonly request: WireRequest
  readonly fresh: boolean
}

/** The connection a socket belongs to, for the callbacks all connections share. */
const kConnection = Symbol('apt.wireConnection')
type OwnedSocket = net.Socket & { [kConnection]?: WireConnection }

/**
 * The buffer every connection's socket reads into (`consume`). A read is parsed, and the body
 * pieces in it copied out, before the callback returns, so one buffer serves every socket: no
 * Buffer per read, and no memory per connection.
 */
const READ_BUFFER_BYTES = 65_536
let sharedReadBuffer: Buffer | null = null

function readBuffer (): Buffer {
  if (sharedReadBuffer === null) sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES)
  return sharedReadBuffer
}

/** A read into the shared buffer; `this` is the socket. */
function onSharedRead (this: OwnedSocket, bytes: number, buffer: Buffer): boolean {
  (this[kConnection] as WireConnection).onRead(buffer, bytes)
  return true // back-pressure pauses the socket itself (#pause)
}

/** A connection's one timer fired; the connection is the timer's argument, so no closure per timer. */
function onWireTimer (connection: WireConnection): void {
  connection.onTimeout()
}

class WireConnection implements ResponseTarget {
  readonly pool: WirePool
  readonly socket: net.Socket
  readonly reader: ResponseReader
  /** Reads land in the shared buffer (`consume`): body pieces are views that the next read overwrites. */
  readonly sharedReads: boolean
  /** Requests written on this socket. */
  served = 0
  connected = false
  destroyed = false
  handler: WireHandler | null = null
  /** The exchange this connection was opened for, until the socket connects. */
  pending: Exchange | null
  /** Response bytes have arrived for the current request (no stale replay past this point). */
  responded = false
  keepAlive = true
  /** The request body is still being written. */
  writingBody = false
  paused = false
  keepAliveMs: number
  timer: NodeJS.Timeout | null = null
  timerKind: 'connect' | 'headers' | 'body' | 'idle' | null = null
  /** The Timeout's duration, and when it fires (performance.now(), at the latest). */
  timerMs = 0
  timerAt = 0
  /** When the current phase times out (performance.now()); the body's is `bodyAt` + its timeout. */
  deadline = 0
  /** When the response body last moved (performance.now()): the body timer is checked lazily against it. */
  bodyAt = 0
  readonly resume: () => void

  constructor (pool: WirePool, exchange: Exchange) {
    this.pool = pool
    this.pending = exchange
    this.keepAliveMs = pool.options.keepAliveTimeoutMs
    const { url } = pool
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80)
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const consume = pool.options.consume
    // The socket's `onread`: reads land in the shared buffer and come straight to onRead, with no
    // JavaScript stream, Buffer or 'data' event per read (docs/performance.md, changes 17 and 41).
    const onread = consume ? { buffer: readBuffer(), callback: onSharedRead } : undefined
    this.socket = url.protocol === 'https:'
      ? tls.connect({
          host, port, servername: net.isIP(host) === 0 ? host : undefined,
          ALPNProtocols: ['http/1.1'], rejectUnauthorized: true,
          ...(pool.ca === undefined ? {} : { ca: pool.ca }),
          ...(onread === undefined ? {} : { onread }),
        })
      : net.connect({ host, port, ...(onread === undefined ? {} : { onread }) })
    this.socket.setNoDelay(true)
    this.socket.setKeepAlive(true, 60_000)
    // The callbacks are shared by every connection (socket events come on the socket, which knows
    // its connection; the reader calls the connection itself): an idle or streaming connection
    // holds no closures of its own (docs/performance.md, change 25).
    ;(this.socket as OwnedSocket)[kConnection] = this
    // Body pieces are passed on as views of the read; onBody copies them where a handler cannot take a view.
    this.reader = new ResponseReader(this, false)
    this.sharedReads = consume
    this.resume = () => {
      if (this.paused && !this.destroyed) {
        this.paused = false
        this.socket.resume()
      }
    }
    this.setTimer('connect', pool.options.connectTimeoutMs)
    // The listener reads the exchange from `pending`, never from this scope: `resume` above shares
    // the constructor's closure context, which would then hold the first exchange (its handler,
    // request body and client objects) for as long as the connection lives.
    this.socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', WireConnection.#socketOnConnect)
    if (!consume) this.socket.on('data', WireConnection.#socketOnData)
    this.socket.on('end', WireConnection.#socketOnEnd)
    this.socket.on('error', WireConnection.#socketOnError)
    this.socket.on('close', WireConnection.#socketOnClose)
    this.socket.on('drain', WireConnection.#socketOnDrain)
  }

  // --- shared callbacks: `this` is the socket -------------------------------

  static #socketOnConnect (this: OwnedSocket): void {
    const connection = this[kConnection] as WireConnection
    connection.connected = true
    connection.clearTimer()
    connection.pool.options.onConnectionOpened()
    const exchange = connection.pending
    connection.pending = null
    if (exchange !== null) connection.send(exchange)
  }

  static #socketOnData (this: OwnedSocket, chunk: Buffer): void {
    (this[kConnection] as WireConnection).onRead(chunk, chunk.length)
  }

  static #socketOnEnd (this: OwnedSocket): void {
    (this[kConnection] as WireConnection).#onEnd()
  }

  static #socketOnError (this: OwnedSocket, error: Error): void {
    (this[kConnection] as WireConnection).destroy(error)
  }

  static #socketOnClose (this: OwnedSocket): void {
    (this[kConnection] as WireConnection).destroy(null)
  }

  static #socketOnDrain (this: OwnedSocket): void {
    const connection = this[kConnection] as WireConnection
    connection.pool.onDrain(connection)
  }

  // --- timers: one Timeout per connection, re-armed per phase --------------

  setTimer (kind: 'connect' | 'headers' | 'body' | 'idle', ms: number, now = performance.now()): void {
    if (ms <= 0) {
      this.clearTimer()
      return
    }
    this.timerKind = kind
    const deadline = now + ms
    this.deadline = deadline
    const timer = this.timer
    if (timer === null) {
      this.timerMs = ms
      this.timerAt = deadline
      this.timer = setTimeout(onWireTimer, ms, this).unref()
      return
    }
    // A Timeout that fires no later than this deadline is left as it is: it then finds the phase's
    // deadline still ahead and waits out the rest (onTimeout). A request moves through three phases
    // (headers, body, idle), each usually ending later than the one before, and re-arming the
    // Timeout for each moved it between Node's timer lists three times a request.
    if (this.timerAt <= deadline) return
    this.#arm(timer, ms, deadline)
  }

  /**
   * Re-arm the connection's one Timeout: a new Timeout and closure per phase was 0.6 KB of garbage
   * per request (docs/performance.md, change 32). `refresh()` files the timer under its
   * `_idleTimeout`, as `timers.active()` did for `enroll()`, and re-activates a fired one.
   */
  #arm (timer: NodeJS.Timeout, ms: number, at: number): void {
    if (this.timerMs !== ms) {
      (timer as NodeJS.Timeout & { _idleTimeout: number })._idleTimeout = ms
      this.timerMs = ms
    }
    this.timerAt = at
    timer.refresh()
  }

  clearTimer (): void {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
      this.timerKind = null
      this.timerMs = 0
    }
  }

  /** The connection's timer fired (`onWireTimer`). */
  onTimeout (): void {
    const kind = this.timerKind
    const timer = this.timer
    if (kind === null || timer === null) return
    const now = performance.now()
    // Body progress moves the body's deadline without touching the Timeout; the other phases'
    // deadlines may lie past a Timeout left armed for an earlier one (setTimer).
    const deadline = kind === 'body' ? this.bodyAt + this.pool.options.bodyTimeoutMs : this.deadline
    const left = Math.ceil(deadline - now)
    if (left >= 1) {
      this.#arm(timer, left, now + left)
      return
    }
    this.timer = null
    this.timerKind = null
    this.timerMs = 0
    switch (kind) {
      case 'connect': this.destroy(new WireError('UND_ERR_CONNECT_TIMEOUT', 'Connect Timeout Error')); break
      case 'headers': this.destroy(new WireError('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error')); break
      case 'body': this.destroy(new WireError('UND_ERR_BODY_TIMEOUT', 'Body Timeout Error')); break
      case 'idle': this.destroy(null); break
    }
  }

  // --- sending ---------------------------------------------------------------

  send (exchange: Exchange): void {
    const { handler, request } = exchange
    this.handler = handler
    this.responded = false
    this.keepAlive = !request.reset
    this.reader.skipBody = request.method === 'HEAD'
    // Abort is bound to this exchange: a late call after the socket moved on does nothing.
    handler.onConnect((error?: Error) => {
      if (this.handler !== handler) return
      // The exchange was abandoned (client gone, shutdown): the socket's state is unknown.
      this.handler = null
      this.destroy(error ?? new WireError('UND_ERR_ABORTED', 'Request aborted'))
    })
    if (this.handler !== handler) return // aborted during onConnect: the socket is already destroyed
    const reused = this.served > 0
    this.served++
    this.pool.options.onSend(handler, reused)
    const body = request.body
    // The head is encoded straight into the buffer that is written (no head string: its
    // concatenations were about 0.9 KB of garbage a request), with a small body after it.
    const requestLine = request.method + ' ' + request.path + ' HTTP/1.1\r\n'
    const headers = request.headers
    const encoded = headers instanceof RequestHead ? headers : null
    const streaming = body !== null && !Buffer.isBuffer(body)
    const chunked = streaming && !(encoded !== null ? encoded.hasContentLength : hasHeader(headers as readonly string[], 'content-length'))
    const extra = chunked ? (request.reset ? CHUNKED_LINE + CLOSE_LINE : CHUNKED_LINE) : request.reset ? CLOSE_LINE : ''
    const hostLine = this.pool.hostLine
    const length = encoded !== null
      ? requestLine.length + hostLine.length + encoded.block.length + extra.length + 2
      : headLength(requestLine, hostLine, headers as readonly string[], extra, '\r\n')
    const coalesced = Buffer.isBuffer(body) && body.length <= COALESCE_BYTES ? body : null
    const out = Buffer.allocUnsafe(length + (coalesced?.length ?? 0))
    if (encoded !== null) writeEncodedHead(out, requestLine, hostLine, encoded.block, extra)
    else writeHead(out, requestLine, hostLine, headers as readonly string[], extra, '\r\n')
    this.setTimer('headers', this.pool.options.headersTimeoutMs)
    const socket = this.socket
    if (body === null || coalesced !== null) {
      coalesced?.copy(out, length)
      socket.write(out)
    } else if (Buffer.isBuffer(body)) {
      socket.cork()
      socket.write(out)
      socket.write(body)
      socket.uncork()
    } else {
      socket.write(out)
      this.writingBody = true
      void this.#writeStream(handler, body as AsyncIterable<Buffer>, chunked)
    }
  }

  async #writeStream (handler: WireHandler, body: AsyncIterable<Buffer>, chunked: boolean): Promise<void> {
    const socket = this.socket
    try {
      for await (const chunk of body) {
        if (this.handler !== handler || this.destroyed) break
        if (chunk.length === 0) continue
        // Every framing write must happen: with `a && b && c`, a write reporting back-pressure (false)
        // skipped the rest, so the chunk lost its CRLF and the upstream rejected the body. The last
        // write's result accounts for everything buffered before it.
        let ok: boolean
        if (chunked) {
          socket.write(chunk.length.toString(16) + '\r\n')
          socket.write(chunk)
          ok = socket.write('\r\n')
        } else {
          ok = socket.write(chunk)
        }
        // As undici does: the headers timeout counts from the last progress of the body, so a long
        // upload is not cut by it while it is still moving.
        this.#bodyProgress()
        if (!ok) await new Promise<void>((resolve) => { this.pool.waitDrain(this, resolve) })
      }
      if (this.destroyed) return
      if (this.handler !== handler) {
        // The response finished (or was abandoned) before the whole body went out: the socket cannot be reused.
        this.writingBody = false
        if (this.handler === null) this.destroy(null)
        return
      }
      if (chunked) socket.write('0\r\n\r\n')
      this.writingBody = false
      this.#bodyProgress()
    } catch (error) {
      this.writingBody = false
      // The body source failed (client gone, body too large): the request is half-written.
      if (this.handler === handler) this.destroy(error as Error)
      else if (this.handler === null) this.destroy(null)
    }
  }

  #bodyProgress (): void {
    // The headers timeout counts from the request's last byte: its deadline moves, the Timeout stays.
    if (this.timerKind === 'headers') this.deadline = performance.now() + this.pool.options.headersTimeoutMs
  }

  // --- receiving -------------------------------------------------------------

  /** One read: `buffer[0, bytes)`, in the shared buffer or a 'data' event's chunk. */
  onRead (buffer: Buffer, bytes: number): void {
    if (this.destroyed) return
    if (this.handler === null) {
      // Bytes with no request outstanding: the connection cannot be trusted.
      this.destroy(null)
      return
    }
    this.responded = true
    let used: number
    try {
      used = this.reader.execute(buffer, 0, bytes)
    } catch (error) {
      // A handler callback threw (e.g. the client response could not take the head): fail this
      // exchange and drop the connection, never the process.
      this.destroy(error instanceof Error ? error : new Error(String(error)))
      return
    }
    if (this.destroyed) return
    if (used < 0) {
      // llhttp's code (HPE_*), as undici's HTTPParserError carries, not UND_ERR_SOCKET: the upstream
      // answered (badly), so this is no stale-socket failure and the request must not be replayed.
      const code = this.reader.error
      this.destroy(new WireError(code, `Invalid upstream response (${code})`))
      return
    }
    // Bytes after a complete response, which no request asked for: the connection cannot be trusted.
    if (used < bytes) {
      this.destroy(null)
      return
    }
    // A response still running: what this read gave its handler leaves now, in one write.
    const handler = this.handler
    if (handler !== null && handler.onReadEnd !== undefined && !handler.onReadEnd()) this.#pause()
  }

  #onEnd (): void {
    // A response delimited by the end of the connection completes here.
    if (this.handler !== null && this.responded) this.reader.finish()
    this.destroy(null)
  }

  // --- the reader's target -------------------------------------------------------

  onHead (head: ResponseHead): void {
    const handler = this.handler
    if (handler === null) return
    if (!this.reader.keepAlive) this.keepAlive = false
    else if (head.keepAliveTimeoutS >= 0) {
      // The upstream's keep-alive hint is trusted minus a margin (as undici does).
      const hinted = head.keepAliveTimeoutS * 1000 - KEEP_ALIVE_MARGIN_MS
      this.keepAliveMs = Math.max(0, Math.min(this.pool.options.keepAliveTimeoutMs, hinted))
    }
    this.bodyAt = performance.now()
    this.setTimer('body', this.pool.options.bodyTimeoutMs, this.bodyAt)
    // Bound to this exchange: a late 'drain' from a finished exchange's client must not resume a
    // socket that a later exchange paused for its own back-pressure.
    const resume = (): void => {
      if (this.handler === handler) this.resume()
    }
    if (!handler.onHeaders(head.statusCode, head, resume, head.statusText)) this.#pause()
  }

  onBody (chunk: Buffer): void {
    const handler = this.handler
    if (handler === null) return
    if (this.timerKind === 'body') this.bodyAt = performance.now()
    // A piece of the shared read buffer, which the next read overwrites: the handler copies it
    // where it writes it, or it is copied here. A 'data' event's chunk is the handler's to keep.
    const written = !this.sharedReads
      ? handler.onData(chunk)
      : handler.onDataView !== undefined ? handler.onDataView(chunk) : handler.onData(Buffer.from(chunk))
    if (!written) this.#pause()
  }

  onComplete (): void {
    const handler = this.handler
    if (handler === null) return
    // The connection's one timer is re-armed by #release below (idle, or the next request's
    // headers): cleared and made anew here, it was a new Timeout for every request (0.23 KB).
    // It is cleared only while the request body is still being written, until #release.
    if (this.writingBody) this.clearTimer()
    this.handler = null
    // `paused` stays as it is: a socket paused for this response's last chunk is resumed by
    // #release before it serves anyone else (clearing the flag here left it paused for good).
    handler.onComplete(null)
    if (!this.writingBody) this.#release()
  }

  #pause (): void {
    if (!this.paused) {
      this.paused = true
      this.socket.pause()
    }
  }

  #release (): void {
    if (this.destroyed) return
    // Not `|| this.pool.closing`: while closing, pool.release() still hands the socket to a queued
    // request (accepted before close()), or else closes it (#maybeClosed).
    if (!this.keepAlive || this.keepAliveMs <= 0) {
      this.destroy(null)
      return
    }
    if (this.paused) {
      this.paused = false
      this.socket.resume()
    }
    this.pool.release(this)
  }

  /** Close the socket; the outstanding exchange (if any) gets `error`. */
  destroy (error: Error | null): void {
    if (this.destroyed) return
    this.destroyed = true
    this.clearTimer()
    // A connection that never connected fails the exchange it was opened for.
    const handler = this.handler ?? this.pending?.handler ?? null
    this.handler = null
    this.pending = null
    this.socket.destroy()
    // destroy() may run inside one of the reader's callbacks: it reads nothing more of this read.
    this.reader.halt()
    this.pool.removed(this)
    if (handler === null) return
    if (this.responded && error !== null) {
      const code = (error as Error & { code?: string }).code
      if (code === 'ECONNRESET' || code === 'EPIPE') error = new WireError('UND_ERR_RES_INCOMPLETE', `The upstream connection failed mid-response (${code})`)
    }
    // Before any response byte the failure is a stale-socket candidate (UND_ERR_SOCKET); after, it is not.
    handler.onError(error ?? (this.responded
      ? new WireError('UND_ERR_RES_INCOMPLETE', 'The upstream closed the connection before the response was complete')
      : new WireError('UND_ERR_SOCKET', 'other side closed')))
  }
}

function hasHeader (headers: readonly string[], lowerName: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return true
  }
  return false
}

export class WirePool {
  readonly options: WirePoolOptions
  readonly url: URL
  readonly hostLine: string
  /** Trusted roots when a private CA is added (Node's bundle plus it): verification stays on. */
  readonly ca: string[] | undefined
  closing = false
  readonly #all = new Set<WireConnection>()
  /** Idle connections, most recently used last (reused first: the others may expire). */
  readonly #free: WireConnection[] = []
  readonly #queue: Exchange[] = []
  #connecting = 0
  readonly #drainWaiters = new Map<WireConnection, () => void>()
  #closed: (() => void) | null = null

  constructor (options: WirePoolOptions) {
    this.options = options
    this.url = new URL(options.origin)
    this.hostLine = `host: ${this.url.host}\r\n`
    this.ca = options.tlsCa === undefined ? undefined : [...tls.rootCertificates, options.tlsCa.toString()]
  }

  /**
   * Send on an idle connection, or a new one while under the limit; otherwise queue.
   * Returns false when the request was queued (the pool is saturated). `fresh` never
   * reuses an idle socket (a stale-socket replay).
   */
  dispatch (request: WireRequest, handler: WireHandler, fresh = false): boolean {
    const exchange: Exchange = { handler, request, fresh }
    if (this.closing) {
      handler.onError(new WireError('UND_ERR_CLOSED', 'The client is closed'))
      return true
    }
    if (!fresh) {
      const connection = this.#free.pop()
      if (connection !== undefined) {
        connection.send(exchange)
        return true
      }
    }
    if (this.#all.size < this.options.maxConnections || fresh) {
      this.#open(exchange)
      return true
    }
    this.#queue.push(exchange)
    return false
  }

  #open (exchange: Exchange): void {
    const connection = new WireConnection(this, exchange)
    this.#all.add(connection)
    this.#connecting++
    connection.socket.once(this.url.protocol === 'https:' ? 'secureConnect' : 'connect', () => { this.#connecting-- })
    // A connect failure fails the exchange it was opened for (as undici does).
  }

  release (connection: WireConnection): void {
    const next = this.#queue.shift()
    if (next !== undefined) {
      connection.send(next)
      return
    }
    connection.setTimer('idle', connection.keepAliveMs)
    this.#free.push(connection)
    this.#maybeClosed()
  }

  removed (connection: WireConnection): void {
    if (!this.#all.delete(connection)) return
    if (!connection.connected) this.#connecting--
    const index = this.#free.lastIndexOf(connection)
    if (index !== -1) this.#free.splice(index, 1)
    const waiter = this.#drainWaiters.get(connection)
    if (waiter !== undefined) {
      this.#drainWaiters.delete(connection)
      waiter()
    }
    // A slot opened: start the next queued request on a new connection.
    // Also while closing: a request queued before close() must run (or fail), never be dropped unanswered.
    // (destroy() empties the queue first.)
    const next = this.#queue.shift()
    if (next !== undefined) this.#open(next)
    this.#maybeClosed()
  }

  waitDrain (connection: WireConnection, resolve: () => void): void {
    this.#drainWaiters.set(connection, resolve)
  }

  onDrain (connection: WireConnection): void {
    const waiter = this.#drainWaiters.get(connection)
    if (waiter !== undefined) {
      this.#drainWaiters.delete(connection)
      waiter()
    }
  }

  /** Take a queued request out (it timed out waiting or its client left). */
  cancelQueued (handler: WireHandler): boolean {
    const index = this.#queue.findIndex((exchange) => exchange.handler === handler)
    if (index === -1) return false
    this.#queue.splice(index, 1)
    return true
  }

  get stats (): WirePoolStats {
    const size = this.#all.size
    const free = this.#free.length
    const connected = size - this.#connecting
    return { connected, free, pending: this.#queue.length, queued: this.#queue.length, running: size - free, size }
  }

  /** Stop taking requests; resolve once every running request has finished and every socket is closed. */
  close (): Promise<void> {
    this.closing = true
    return new Promise((resolve) => {
      this.#closed = resolve
      this.#maybeClosed()
    })
  }

  #maybeClosed (): void {
    if (!this.closing) return
    for (const connection of [...this.#free]) connection.destroy(null)
    if (this.#all.size === 0 && this.#queue.length === 0 && this.#closed !== null) {
      const resolve = this.#closed
      this.#closed = null
      resolve()
    }
  }

  /** Fail everything at once. */
  destroy (error: Error): Promise<void> {
    this.closing = true
    const queued = this.#queue.splice(0)
    for (const exchange of queued) exchange.handler.onError(error)
    for (const connection of [...this.#all]) connection.destroy(error)
    return this.close()
  }
}
