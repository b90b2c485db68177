import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import process from 'node:process'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { maxHeaderSize as defaultMaxHeaderSize, STATUS_CODES } from 'node:http'
import { Readable } from 'node:stream'
import net, { type Socket } from 'node:net'
import { type PlainRequest, scanPlainRequest } from './plain-request.js'
import { HTTP_METHODS, HTTPParser, type HTTPParserClass, type HTTPParserInstance, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageComplete, parserClass } from '@apt/adapter/llhttp'

/**
 * The front: the client side of `/v1/*` without node:http's request and response objects.
 *
 * node:http's server side costs about 80 µs of CPU per request on these machines; Node's own
 * llhttp binding reading the socket itself, with a response written straight to the socket,
 * costs about 30 (docs/performance.md, change 20). The front takes each connection the
 * node:http server accepts, parses requests with that same C++ parser (as strict as
 * node:http: same binding, same header size limit, same lenient flags), and serves the plain
 * ones itself: HTTP/1.1 keep-alive requests for `/v1/*` without `Expect` or `Upgrade`.
 *
 * Each read lands in one buffer shared by every front socket (the socket's `onread`, set after
 * the fact). A read that holds exactly one plain request, on a connection whose parser is
 * between requests or not made yet, is served without llhttp (./plain-request.ts: a strict
 * subset of what llhttp accepts, read the same way): one call into JavaScript per request
 * instead of four, and no parser state to move (docs/performance.md, change 54). Every other
 * read is given to llhttp as it came; a connection's parser is made when a read first needs it
 * (change 56), so a connection whose every request is plain never has one.
 *
 * Anything else (the proxy's own routes, HTTP/1.0, `Connection: close`, `Expect`, upgrades)
 * is handed to node:http for the rest of the connection: the request head is rebuilt from
 * the parsed fields, the unparsed bytes are put back, and node:http's own connection
 * listener takes the socket, exactly as if it had accepted it.
 *
 * A front connection's parser is registered in the node:http server's connection list, so
 * node:http's headers and request timeouts, `closeIdleConnections()` and
 * `closeAllConnections()` cover front connections too. A connection without a parser is covered
 * by the front itself: its keep-alive timer applies the headers timeout until a first byte
 * comes, and the server's two closing methods are wrapped to visit it.
 */

/** `_header` once the head is on the socket. */
const HEAD_WRITTEN = 'HTTP/1.1 (head written)\r\n\r\n'

/** llhttp reports a request's method as its enum value: the names, by value, learnt once from the parser itself. */
const METHOD_NAMES: string[] = (() => {
  const names: string[] = []
  for (const name of HTTP_METHODS) {
    // CONNECT takes an authority, every other method a path.
    for (const target of ['/v1/', 'example.com:443']) {
      const parser = new HTTPParser()
      parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone)
      parser[kOnHeaders] = () => {}
      parser[kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, method: number) => {
        names[method] = name
        return 0
      }
      parser[kOnBody] = () => {}
      parser[kOnMessageComplete] = () => {}
      parser.execute(Buffer.from(`${name} ${target} HTTP/1.1\r\n\r\n`, 'latin1'))
      parser.close()
      if (names.includes(name)) break
    }
  }
  return names
})()

/** A socket's native stream handle, as node:http uses it for a consumed socket. */
interface StreamHandle {
  isStreamBase?: boolean
  _consumed?: boolean
  reading?: boolean
  readStart (): number
  readStop (): number
}

type FrontSocket = Socket & { _handle: StreamHandle | null, _httpMessage?: unknown, parser?: unknown, destroySoon (): void }

/** The lines node:http adds to a keep-alive response, for the server's keep-alive timeout. */
function keepAliveLines (ms: number): string {
  return ms > 0 ? `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(ms / 1000)}\r\n` : 'connection: keep-alive\r\n'
}

const ABORTED = 'aborted'

/** The IMF-fixdate of the current second, formatted once per second (as node:http caches it). */
let dateSecond = -1
let dateText = ''
function httpDate (): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateText = new Date(now).toUTCString()
  }
  return dateText
}

function abortedError (): Error {
  return Object.assign(new Error(ABORTED), { code: 'ECONNRESET' })
}

/**
 * A body stream whose client left: it fails with ECONNRESET when someone listens for errors,
 * and otherwise just closes (a reader then sees a premature close), as IncomingMessage does.
 * An 'error' nobody listens to would end the process.
 */
function destroyQuietly (stream: Readable): void {
  stream.destroy(stream.listenerCount('error') > 0 ? abortedError() : undefined)
}

/** What a request's `rawHeaders` becomes once released (never written to). */
const NO_HEADERS: string[] = []

/** Headers of which node:http keeps only the first when repeated (IncomingMessage's matchKnownFields). */
const SINGLE_VALUE_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
])

/**
 * A `/v1/*` request read by the front. It carries what the proxy handler reads from an
 * `IncomingMessage` (method, url, rawHeaders, a lazily built `headers` object) plus the two
 * framing facts the parser's header scan found. Its body is taken once, either whole
 * (`collect`, for the small bodies that are sent as one buffer) or as a stream (`stream`).
 */
export class FrontRequest {
  readonly method: string
  readonly url: string
  /**
   * A plain request's head as it came (a copy) and, per header line, its name's and value's
   * start and end (./plain-request.ts): its header lines are forwarded as bytes
   * (`prepareRequestHead`), and `rawHeaders` is made from them only if something asks. Null for
   * a request llhttp read.
   */
  plainHead: Buffer | null = null
  plainLines: number[] | null = null
  #rawHeaders: string[] | null
  /** Declared `content-length`, or -1 when there is none. */
  readonly contentLength: number
  /** A `transfer-encoding` header was sent (the body is chunked). */
  readonly hasTransferEncoding: boolean
  readonly socket: Socket
  #headers: IncomingHttpHeaders | undefined = undefined
  readonly #connection: FrontConnection
  #chunks: Buffer[] | null = null
  #complete = false
  #aborted = false
  #taken = false
  #discard = false
  #onBody: ((body: Buffer) => void) | null = null
  #onAbort: (() => void) | null = null
  #stream: Readable | null = null

  constructor (connection: FrontConnection, method: string, url: string, rawHeaders: string[] | null, contentLength: number, hasTransferEncoding: boolean) {
    this.#connection = connection
    this.socket = connection.socket
    this.method = method
    this.url = url
    this.#rawHeaders = rawHeaders
    this.contentLength = contentLength
    this.hasTransferEncoding = hasTransferEncoding
  }

  /** The header lines as read, a flat [name, value, ...] list, until `releaseHeaders()`; then empty. */
  get rawHeaders (): string[] {
    if (this.#rawHeaders === null) {
      const head = this.plainHead
      const lines = this.plainLines
      const raw: string[] = []
      if (head !== null && lines !== null) {
        const text = head.toString('latin1')
        for (let k = 0; k < lines.length; k += 4) raw.push(text.slice(lines[k], lines[k + 1]), text.slice(lines[k + 2], lines[k + 3]))
      }
      this.#rawHeaders = raw
    }
    return this.#rawHeaders
  }

  /** Header names lower-cased and repeated headers merged as node:http merges them, built on first use. */
  get headers (): IncomingHttpHeaders {
    if (this.#headers === undefined) {
      const headers: Record<string, string | string[]> = {}
      const raw = this.rawHeaders
      for (let i = 0; i < raw.length; i += 2) {
        const name = (raw[i] as string).toLowerCase()
        const value = raw[i + 1] as string
        const seen = headers[name]
        if (seen === undefined) headers[name] = name === 'set-cookie' ? [value] : value
        else if (Array.isArray(seen)) seen.push(value)
        else if (name === 'cookie') headers[name] = `${seen}; ${value}`
        else if (!SINGLE_VALUE_HEADERS.has(name)) headers[name] = `${seen}, ${value}`
      }
      this.#headers = headers
    }
    return this.#headers
  }

  /**
   * Forget the header lines once the request has been forwarded (the proxy handler has its own
   * upstream list by then): a stream then does not keep them, about 0.5 KiB, for as long as it
   * lasts, nor the client's key past the request's head. `rawHeaders` and `headers` are empty after.
   */
  releaseHeaders (): void {
    this.#rawHeaders = NO_HEADERS
    this.#headers = undefined
    this.plainHead = null
    this.plainLines = null
  }

  /** The whole body as one buffer once it has arrived, or `onAbort` if the client leaves first. */
  collect (onBody: (body: Buffer) => void, onAbort: () => void): void {
    this.#taken = true
    if (this.#complete) onBody(this.#joined())
    else if (this.#aborted) onAbort()
    else {
      this.#onBody = onBody
      this.#onAbort = onAbort
    }
  }

  /** The body as a readable stream; reads from the client stop while it is full. */
  stream (): Readable {
    if (this.#stream !== null) return this.#stream
    this.#taken = true
    const connection = this.#connection
    const stream = new Readable({ read () { connection.bodyWanted() } })
    this.#stream = stream
    const chunks = this.#chunks
    this.#chunks = null
    if (chunks !== null) for (const chunk of chunks) stream.push(chunk)
    if (this.#complete) stream.push(null)
    else if (this.#aborted) destroyQuietly(stream)
    return stream
  }

  /** @internal no one took the body: what still arrives is dropped (node:http dumps it the same way). */
  discardUntaken (): void {
    if (this.#taken) return
    this.#discard = true
    this.#chunks = null
  }

  /** @internal the response ended before the body did (e.g. a 413 mid-upload): drop the rest so the connection can go on. */
  discardRest (): boolean {
    if (this.#complete || this.#aborted) return false
    this.#discard = true
    this.#chunks = null
    this.#onBody = null
    this.#onAbort = null
    const stream = this.#stream
    if (stream !== null && !stream.destroyed) destroyQuietly(stream)
    return true
  }

  /** @internal a body chunk from the parser. */
  push (chunk: Buffer): void {
    if (this.#discard) return
    const stream = this.#stream
    if (stream !== null) {
      if (!stream.push(chunk)) this.#connection.bodyFull()
    } else {
      if (this.#chunks === null) this.#chunks = []
      this.#chunks.push(chunk)
    }
  }

  /** @internal the parser reached the end of this request. */
  complete (): void {
    this.#complete = true
    if (this.#stream !== null) this.#stream.push(null)
    else if (this.#onBody !== null) {
      const onBody = this.#onBody
      this.#onBody = null
      this.#onAbort = null
      onBody(this.#joined())
    }
  }

  /** @internal the connection closed before the body ended. */
  abort (): void {
    if (this.#complete || this.#aborted) return
    this.#aborted = true
    this.#chunks = null
    if (this.#stream !== null) destroyQuietly(this.#stream)
    else if (this.#onAbort !== null) {
      const onAbort = this.#onAbort
      this.#onBody = null
      this.#onAbort = null
      onAbort()
    }
  }

  #joined (): Buffer {
    const chunks = this.#chunks
    this.#chunks = null
    if (chunks === null) return Buffer.alloc(0)
    return chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks)
  }
}

type Listener = (this: FrontResponse) => void

/**
 * The response to a front request: the part of `ServerResponse` the adapter and the proxy's
 * error replies use. The adapter's direct write (the normal case) writes the head and body
 * to the socket itself and only calls `end()`; `writeHead`/`write`/`end` frame a response
 * here for the rest (error replies, rewritten batch results).
 */
export class FrontResponse {
  statusCode = 200
  _header: string | null = null
  _headerSent = false
  finished = false
  readonly shouldKeepAlive: boolean
  readonly socket: Socket
  readonly req: FrontRequest
  readonly #connection: FrontConnection
  /** 'close' listeners: the adapter registers exactly one per response, so no array is made for it. */
  #closeListener: Listener | null = null
  #moreCloseListeners: Listener[] | null = null
  #headPending = false
  #chunked = false
  #bodiless = false

  constructor (connection: FrontConnection, request: FrontRequest, keepAlive: boolean) {
    this.#connection = connection
    this.socket = connection.socket
    this.req = request
    this.shouldKeepAlive = keepAlive
  }

  get headersSent (): boolean { return this._headerSent }
  get writableFinished (): boolean { return this.finished }
  get destroyed (): boolean { return this.socket.destroyed }

  on (event: string, listener: Listener): this {
    if (event === 'close') {
      if (this.#closeListener === null) this.#closeListener = listener
      else if (this.#moreCloseListeners === null) this.#moreCloseListeners = [listener]
      else this.#moreCloseListeners.push(listener)
    } else if (event === 'drain') this.socket.on('drain', listener as () => void)
    return this
  }

  once (event: 'drain', listener: () => void): this {
    this.socket.once(event, listener)
    return this
  }

  removeListener (event: string, listener: Listener): this {
    if (event === 'close') {
      if (this.#closeListener === listener) this.#closeListener = this.#moreCloseListeners?.shift() ?? null
      else {
        const more = this.#moreCloseListeners
        const at = more === null ? -1 : more.indexOf(listener)
        if (at !== -1) (more as Listener[]).splice(at, 1)
      }
    } else if (event === 'drain') this.socket.removeListener('drain', listener as () => void)
    return this
  }

  /** @internal the client's connection closed. */
  emitClose (): void {
    const first = this.#closeListener
    const more = this.#moreCloseListeners
    this.#closeListener = null
    this.#moreCloseListeners = null
    if (first !== null) first.call(this)
    if (more !== null) for (const listener of more) listener.call(this)
  }

  writeHead (statusCode: number, textOrHeaders?: string | readonly string[] | Record<string, string | number | readonly string[] | undefined>, maybeHeaders?: readonly string[] | Record<string, string | number | readonly string[] | undefined>): this {
    if (this._headerSent || this.#headPending) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' })
    const statusText = typeof textOrHeaders === 'string' ? textOrHeaders : ''
    const headers = typeof textOrHeaders === 'string' ? maybeHeaders : textOrHeaders
    let head = `HTTP/1.1 ${statusCode} ${statusText || STATUS_CODES[statusCode] || 'unknown'}\r\n`
    let hasLength = false
    let hasDate = false
    let close = !this.shouldKeepAlive
    const add = (name: string, value: string): void => {
      const lower = name.toLowerCase()
      if (lower === 'connection') {
        if (value.toLowerCase().includes('close')) close = true
        return
      }
      // The framing is the front's to write.
      if (lower === 'transfer-encoding' || lower === 'keep-alive') return
      if (lower === 'content-length') hasLength = true
      else if (lower === 'date') hasDate = true
      head += `${name}: ${value}\r\n`
    }
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) add(headers[i] as string, String(headers[i + 1]))
    } else if (headers !== undefined) {
      for (const name of Object.keys(headers)) {
        const value = (headers as Record<string, string | number | readonly string[] | undefined>)[name]
        if (value === undefined) continue
        if (Array.isArray(value)) for (const item of value) add(name, String(item))
        else add(name, String(value))
      }
    }
    const method = this.req.method
    this.#bodiless = method === 'HEAD' || statusCode === 204 || statusCode === 304 || statusCode < 200
    this.#chunked = !this.#bodiless && !hasLength
    // As node:http: every response the proxy writes itself carries Date (RFC 9110 §6.6.1).
    if (!hasDate) head += `date: ${httpDate()}\r\n`
    head += close ? 'connection: close\r\n' : keepAliveLines(this.#connection.keepAliveTimeout)
    head += this.#chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n'
    if (close) this.#connection.closeAfterResponse = true
    this.statusCode = statusCode
    this._header = head
    this.#headPending = true
    return this
  }

  flushHeaders (): void {
    if (this.#headPending) this.#flushHead()
  }

  write (chunk: Buffer | string, encoding?: BufferEncoding): boolean {
    if (!this._headerSent && !this.#headPending) this.writeHead(this.statusCode)
    const socket = this.socket
    socket.cork()
    if (this.#headPending) this.#flushHead()
    const written = this.#writeBody(chunk, encoding)
    socket.uncork()
    return written
  }

  end (chunk?: Buffer | string, encoding?: BufferEncoding): this {
    if (this.finished) return this
    if (!this._headerSent && !this.#headPending) this.writeHead(this.statusCode)
    const socket = this.socket
    if (this.#headPending || chunk !== undefined || this.#chunked) {
      socket.cork()
      if (this.#headPending) this.#flushHead()
      if (chunk !== undefined) this.#writeBody(chunk, encoding)
      if (this.#chunked) socket.write('0\r\n\r\n', 'latin1')
      socket.uncork()
    }
    this.finished = true
    this.#connection.responseDone(this)
    return this
  }

  destroy (error?: Error): this {
    this.socket.destroy(error)
    return this
  }

  #flushHead (): void {
    this.#headPending = false
    this._headerSent = true
    this.socket.write(this._header as string, 'latin1')
    // Only its truth is read from now on: an open stream does not keep its head (~1 KiB).
    this._header = HEAD_WRITTEN
  }

  #writeBody (chunk: Buffer | string, encoding?: BufferEncoding): boolean {
    if (this.#bodiless) return true
    const socket = this.socket
    if (!this.#chunked) return typeof chunk === 'string' ? socket.write(chunk, encoding ?? 'utf8') : socket.write(chunk)
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding ?? 'utf8') : chunk.length
    if (length === 0) return true
    socket.write(`${length.toString(16)}\r\n`, 'latin1')
    if (typeof chunk === 'string') socket.write(chunk, encoding ?? 'utf8')
    else socket.write(chunk)
    return socket.write('\r\n', 'latin1')
  }
}

export type FrontHandler = (request: FrontRequest, response: FrontResponse) => void

/** Why a connection went to node:http: what its first request the front does not serve had. */
export type HandOffReason = 'route' | 'version' | 'close' | 'expect' | 'upgrade'
export const HAND_OFF_REASONS: readonly HandOffReason[] = ['route', 'version', 'close', 'expect', 'upgrade']

/** Counters of the front, for the metrics endpoints. */
export interface FrontStats {
  /** Connections the front took. */
  connections: number
  /** Connections it handed to node:http, by reason. */
  handOffs: Record<HandOffReason, number>
  /** Connections that went straight to node:http (no native stream handle, `maxRequestsPerSocket`). */
  bypassed: number
  /** Requests read without llhttp (./plain-request.ts). */
  plainRequests: number
}

export interface FrontOptions {
  /** Serves a front request (called synchronously as its head is parsed). */
  handler: FrontHandler
  /** True while the proxy drains: responses then close their connection. */
  draining: () => boolean
  /** An exception escaped the handler or a body callback; its connection is closed. */
  onError: (error: unknown) => void
}

type ConnectionListener = (this: Server, socket: Socket) => void

function onSocketError (): void {
  // 'close' follows; the connection cleans up there.
}

/**
 * node:net's own keys of a socket's `onread` (the buffer reads land in and the callback they go
 * to), learnt once from a socket made with that option. An accepted socket is given them after
 * the fact, as `net` does for a client socket made with `onread`.
 */
const ONREAD_KEYS = (() => {
  const probe = new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } } as ConstructorParameters<typeof net.Socket>[0])
  const keys = Object.getOwnPropertySymbols(probe)
  const find = (description: string): symbol | undefined => keys.find((key) => key.description === description)
  const buffer = find('kBuffer')
  const callback = find('kBufferCb')
  const generator = find('kBufferGen')
  probe.destroy()
  return buffer === undefined || callback === undefined || generator === undefined ? null : { buffer, callback, generator }
})()

/**
 * The buffer every front socket reads into. A read is served, or given to llhttp (which copies
 * what it keeps), before its callback returns, so one buffer serves every connection.
 */
const READ_BUFFER_BYTES = 65_536
let sharedReadBuffer: Buffer | null = null
function readBuffer (): Buffer {
  if (sharedReadBuffer === null) sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES)
  return sharedReadBuffer
}

/** What `scanPlainRequest` found in the read being served (one read at a time). */
const plain: PlainRequest = { method: '', targetStart: 0, targetEnd: 0, headEnd: 0, contentLength: 0, lines: [] }

/** The connection a parser belongs to, for the callbacks all front connections share. */
const kFrontConnection = Symbol('apt.frontConnection')
type OwnedParser = HTTPParserInstance & { [kFrontConnection]?: FrontConnection }
/** The async resource of every front parser (as the wire engine's: no object per connection). */
const PARSER_RESOURCE = {}
/** Node's llhttp parser, with the front connection's callbacks on its prototype (set in its static block). */
let FrontParser: HTTPParserClass
type OwnedSocket = FrontSocket & { [kFrontConnection]?: FrontConnection | undefined }

/**
 * One client connection served by the front: a request parser reading the socket itself,
 * the response being written (one at a time, in order), and requests that arrived pipelined
 * behind it.
 */
class FrontConnection {
  readonly socket: FrontSocket
  readonly keepAliveTimeout: number
  closeAfterResponse = false
  readonly #server: Server
  readonly #options: FrontOptions
  readonly #stats: FrontStats
  readonly #nodeListeners: ConnectionListener[]
  /** Made when a read first needs llhttp (a connection whose every request is plain has none). */
  #parser: HTTPParserInstance | null = null
  /** The server's connections without a parser, while this one has none (null once it has one). */
  #parserless: Set<FrontConnection> | null
  readonly #handle: StreamHandle
  #headerLines: string[] = []
  #url = ''
  #active: FrontResponse | null = null
  #queue: FrontRequest[] = []
  #parsing: FrontRequest | null = null
  /** The rebuilt head of a request for node:http, with every byte after it; set once. */
  #handOff: Buffer | null = null
  #handOffHead: string | null = null
  #closed = false
  #pausedForQueue = false
  #pausedForBody = false
  #idleSince = 0
  #lastRead = 0
  #timer: NodeJS.Timeout | null = null
  readonly #maxHeadBytes: number
  /**
   * No parser, or llhttp between requests: a read may be served without it. node:http's
   * connection list counts a new parser as busy with a request from the moment it is made, and
   * only llhttp ending a request marks it idle, as `closeIdleConnections()` needs; so a parser,
   * once made, must have ended a request before a read goes past it.
   */
  #parserIdle = false

  constructor (server: Server, socket: FrontSocket, handle: StreamHandle, options: FrontOptions, nodeListeners: ConnectionListener[], parserless: Set<FrontConnection>, stats: FrontStats) {
    this.#server = server
    this.#stats = stats
    stats.connections++
    this.socket = socket
    this.#handle = handle
    this.#options = options
    this.#nodeListeners = nodeListeners
    this.keepAliveTimeout = server.keepAliveTimeout
    // Without a keep-alive timeout nothing but the parser's place in node:http's connection
    // list (its headers timeout) would close a connection that never sends a byte.
    if (!(this.keepAliveTimeout > 0)) {
      this.#parserless = null
      this.#makeParser()
    } else {
      this.#parserless = parserless
      parserless.add(this)
      this.#parserIdle = true
    }
    ;(socket as OwnedSocket)[kFrontConnection] = this
    socket.on('error', onSocketError)
    socket.on('end', FrontConnection.#socketOnEnd)
    socket.on('close', FrontConnection.#socketOnClose)
    this.#maxHeadBytes = (server as Server & { maxHeaderSize?: number }).maxHeaderSize ?? defaultMaxHeaderSize
    const keys = ONREAD_KEYS as NonNullable<typeof ONREAD_KEYS>
    const target = socket as unknown as Record<symbol, unknown>
    target[keys.buffer] = readBuffer()
    target[keys.callback] = FrontConnection.#socketOnRead
    target[keys.generator] = null
    ;(handle as StreamHandle & { useUserBuffer (buffer: Buffer): void }).useUserBuffer(readBuffer())
    // Flowing, so the end of the client's side ('end') is seen: no data comes through the stream itself.
    socket.resume()
    this.#idleSince = performance.now()
    if (this.keepAliveTimeout > 0) this.#timer = setTimeout(onKeepAliveTimer, this.#timeoutBeforeFirstByte(), this).unref()
  }

  /**
   * The connection's llhttp parser, registered in node:http's connection list (its headers and
   * request timeouts, `closeIdleConnections()`, `closeAllConnections()`), made when a read first
   * needs it (docs/performance.md, change 56).
   */
  #makeParser (): HTTPParserInstance {
    const server = this.#server
    const parser = new FrontParser()
    const lenient = (server as Server & { insecureHTTPParser?: boolean }).insecureHTTPParser === true
    parser.initialize(HTTPParser.REQUEST, PARSER_RESOURCE, (server as Server & { maxHeaderSize?: number }).maxHeaderSize ?? 0, lenient ? HTTPParser.kLenientAll : HTTPParser.kLenientNone, connectionsOf(server))
    parser.socket = this.socket
    // Shared by every connection (llhttp calls them on the parser, which knows its connection):
    // a connection holds no closures of its own (docs/performance.md, change 25), and its parser
    // no table of them: they sit on FrontParser's prototype (change 30).
    ;(parser as OwnedParser)[kFrontConnection] = this
    this.socket.parser = parser
    this.#parser = parser
    this.#parserless?.delete(this)
    this.#parserless = null
    return parser
  }

  /**
   * A connection that has sent nothing yet is closed after the server's headers timeout, as
   * node:http's connection list would (its parser counts as busy from the start), or after the
   * keep-alive timeout if that is shorter.
   */
  #timeoutBeforeFirstByte (): number {
    const headersTimeout = this.#server.headersTimeout
    return headersTimeout > 0 && headersTimeout < this.keepAliveTimeout ? headersTimeout : this.keepAliveTimeout
  }

  /** @internal the server closes its idle connections (`closeIdleConnections()`): this one has no parser in node:http's list. */
  closeIfIdle (): void {
    if (this.#active === null && this.#queue.length === 0) this.socket.destroy()
  }

  #onHead (major: number, minor: number, headers: string[], name: string | undefined, url: string, upgrade: boolean, keepAlive: boolean): number {
    let contentLength = -1
    let transferEncoding = false
    let expect = false
    for (let i = 0; i < headers.length; i += 2) {
      const header = headers[i] as string
      const length = header.length
      // Names of the same length that the SDKs send (x-stainless-os, anthropic-version, accept)
      // differ in their first letter: only a name that may match is lower-cased.
      const first = header.charCodeAt(0) | 0x20
      if (length === 14) {
        if (first === 0x63 && header.toLowerCase() === 'content-length') contentLength = Number(headers[i + 1])
      } else if (length === 17) {
        if (first === 0x74 && header.toLowerCase() === 'transfer-encoding') transferEncoding = true
      } else if (length === 6) {
        if (first === 0x65 && header.toLowerCase() === 'expect') expect = true
      }
    }
    if (name === undefined) {
      this.#onParseError(Object.assign(new Error('Unknown request method'), { code: 'HPE_INVALID_METHOD' }))
      return 1
    }
    const reason: HandOffReason | null = major !== 1 || minor !== 1
      ? 'version'
      : upgrade ? 'upgrade' : !keepAlive ? 'close' : expect ? 'expect' : url.startsWith('/v1/') ? null : 'route'
    if (reason !== null) {
      this.#stats.handOffs[reason]++
      // Not ours: stop after this head (2: as for an upgrade) and give the connection to node:http.
      let head = `${name} ${url} HTTP/${major}.${minor}\r\n`
      for (let i = 0; i < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`
      this.#handOffHead = `${head}\r\n`
      this.#parsing = null
      return 2
    }
    const request = new FrontRequest(this, name, url, headers, contentLength, transferEncoding)
    this.#parsing = request
    if (this.#active === null && this.#queue.length === 0) this.#dispatch(request)
    else {
      // Pipelined: served after the responses before it, in order; reading pauses meanwhile.
      this.#queue.push(request)
      this.#pausedForQueue = true
      this.#updateReading()
    }
    return 0
  }

  #callbackFailed (error: unknown): void {
    this.#options.onError(error)
    this.socket.destroy()
  }

  #dispatch (request: FrontRequest): void {
    const response = new FrontResponse(this, request, !this.#options.draining())
    this.#active = response
    this.socket._httpMessage = response
    this.#options.handler(request, response)
    request.discardUntaken()
  }

  /** A read, in the shared buffer: served here when it is one plain request, else given to llhttp. */
  #onRead (buffer: Buffer, length: number): void {
    if (this.#closed || this.#handOff !== null) return
    if (this.#parserIdle && this.#active === null && this.#queue.length === 0 && scanPlainRequest(buffer, length, this.#maxHeadBytes, plain)) {
      this.#lastRead = performance.now()
      this.#servePlain(buffer, length)
      return
    }
    const chunk = buffer.subarray(0, length)
    this.#parserIdle = false
    const parser = this.#parser ?? this.#makeParser()
    const result = parser.execute(chunk)
    // No request begun and not ended: the next read may be served without llhttp.
    if (!this.#closed) this.#parserIdle = parser.duration() === 0
    this.#afterExecute(result, chunk)
  }

  /** The plain request `scanPlainRequest` found in `buffer[0, length)`, served as llhttp's callbacks would serve it. */
  #servePlain (buffer: Buffer, length: number): void {
    // The head and the body are copied out of the shared buffer (the next read overwrites it).
    const url = (buffer as Buffer & { latin1Slice (start: number, end: number): string }).latin1Slice(plain.targetStart, plain.targetEnd)
    const request = new FrontRequest(this, plain.method, url, null, plain.contentLength, false)
    const copy = Buffer.from(buffer.subarray(0, length))
    request.plainHead = copy.subarray(0, plain.headEnd)
    request.plainLines = plain.lines.slice()
    const body = plain.contentLength > 0 ? copy.subarray(plain.headEnd) : null
    this.#stats.plainRequests++
    try {
      // As #onHead does for a /v1/ request, with nothing before it on the connection (checked by #onRead).
      this.#dispatch(request)
      if (body !== null) request.push(body)
      request.complete()
    } catch (error) {
      this.#callbackFailed(error)
    }
  }

  #afterExecute (result: number | Error, chunk: Buffer): void {
    // Bytes arrived: the keep-alive clock restarts (a head arriving in pieces is not idle).
    this.#lastRead = performance.now()
    if (typeof result !== 'number') {
      this.#onParseError(result)
      return
    }
    const head = this.#handOffHead
    if (head !== null && this.#handOff === null) {
      // Everything after the head (its body, later requests) goes to node:http with it.
      const rest = chunk.subarray(result)
      this.#handOff = Buffer.concat([Buffer.from(head, 'latin1'), rest])
      this.#handOffHead = null
      this.#stopReading()
      if (this.#active === null && this.#queue.length === 0) this.#giveToNode()
    }
  }

  #onParseError (error: Error): void {
    const active = this.#active
    if (active?.headersSent) {
      this.socket.destroy()
      return
    }
    if (this.#server.listenerCount('clientError') > 0) this.#server.emit('clientError', error, this.socket)
    else this.socket.destroy(error)
  }

  /** @internal the response in progress ended. */
  responseDone (response: FrontResponse): void {
    if (this.#active !== response) return
    this.#active = null
    this.socket._httpMessage = null
    if (this.#closed) return
    if (response.req.discardRest()) this.bodyWanted()
    if (this.closeAfterResponse) {
      this.socket.destroySoon()
      return
    }
    if (this.#queue.length > 0 || this.#handOff !== null) {
      // After the ending exchange has settled (its upstream connection is free again), as node:http does.
      process.nextTick(continueConnection, this)
      return
    }
    this.#idleSince = performance.now()
  }

  /** @internal the next pipelined request, or the hand-off to node:http, once the response before it ended. */
  continue (): void {
    if (this.#closed || this.#active !== null) return
    const next = this.#queue.shift()
    if (next !== undefined) {
      if (this.#queue.length === 0) {
        this.#pausedForQueue = false
        this.#updateReading()
      }
      this.#dispatch(next)
    } else if (this.#handOff !== null) this.#giveToNode()
  }

  /** @internal a request body stream is full: stop reading the socket. */
  bodyFull (): void {
    this.#pausedForBody = true
    this.#updateReading()
  }

  /** @internal a request body stream wants more. */
  bodyWanted (): void {
    if (!this.#pausedForBody) return
    this.#pausedForBody = false
    this.#updateReading()
  }

  /** @internal keep-alive timer: close a connection idle for the server's keep-alive timeout. */
  keepAliveCheck (): void {
    this.#timer = null
    if (this.#closed || this.#handOff !== null) return
    // Nothing read yet: the headers timeout (if shorter) applies, as it would to a parser in node:http's list.
    const timeout = this.#lastRead === 0 ? this.#timeoutBeforeFirstByte() : this.keepAliveTimeout
    let wait = timeout
    if (this.#active === null && this.#queue.length === 0 && this.#parsing === null) {
      const idle = performance.now() - Math.max(this.#idleSince, this.#lastRead)
      if (idle >= timeout - 1) {
        this.socket.destroy()
        return
      }
      wait = timeout - idle
    }
    this.#timer = setTimeout(onKeepAliveTimer, wait, this).unref()
  }

  #updateReading (): void {
    if (this.#closed || this.#handOff !== null) return
    const handle = this.#handle
    const paused = this.#pausedForQueue || this.#pausedForBody
    if (paused && handle.reading !== false) {
      handle.reading = false
      handle.readStop()
    } else if (!paused && handle.reading === false) {
      handle.reading = true
      handle.readStart()
    }
  }

  #stopReading (): void {
    const handle = this.#handle
    if (handle.reading !== false) {
      handle.reading = false
      handle.readStop()
    }
  }

  /** Hand the connection to node:http: its head rebuilt, the unparsed bytes put back. */
  #giveToNode (): void {
    const socket = this.socket
    const data = this.#handOff as Buffer
    this.#detach()
    if (socket.destroyed || socket.readableEnded) {
      socket.destroy()
      return
    }
    socket.removeListener('end', FrontConnection.#socketOnEnd)
    socket.removeListener('close', FrontConnection.#socketOnClose)
    socket.removeListener('error', onSocketError)
    ;(socket as OwnedSocket)[kFrontConnection] = undefined
    // node:http's parser consumes the socket from here; a read that still came to the shared
    // buffer (after an upgrade lets go of it) goes into the stream, as a read without `onread` would.
    ;(socket as unknown as Record<symbol, unknown>)[(ONREAD_KEYS as NonNullable<typeof ONREAD_KEYS>).callback] = pushCopy
    socket.parser = null
    socket._httpMessage = null
    socket.pause()
    socket.unshift(data)
    for (const listener of this.#nodeListeners) listener.call(this.#server, socket)
    socket.resume()
  }

  // --- shared callbacks: `this` is the parser or the socket ------------------

  static {
    FrontParser = parserClass({ onHeaders: this.#parserOnHeaders, onHeadersComplete: this.#parserOnHeadersComplete,
      onBody: this.#parserOnBody, onMessageComplete: this.#parserOnMessageComplete })
  }

  static #parserOnHeaders (this: OwnedParser, headers: string[], url: string): void {
    const connection = this[kFrontConnection] as FrontConnection
    for (const line of headers) connection.#headerLines.push(line)
    connection.#url += url
  }

  // Every callback is guarded: llhttp reads the socket itself, so an exception thrown here would
  // have no JavaScript caller to reach and would end the process. It fails the connection instead.
  static #parserOnHeadersComplete (this: OwnedParser, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined,
    _statusCode: unknown, _statusMessage: unknown, upgrade: boolean, keepAlive: boolean): number {
    const connection = this[kFrontConnection] as FrontConnection
    if (headers === undefined) {
      headers = connection.#headerLines
      connection.#headerLines = []
    }
    if (url === undefined) {
      url = connection.#url
      connection.#url = ''
    }
    try {
      return connection.#onHead(major, minor, headers, METHOD_NAMES[method], url, upgrade, keepAlive)
    } catch (error) {
      connection.#callbackFailed(error)
      return 1
    }
  }

  static #parserOnBody (this: OwnedParser, chunk: Buffer): void {
    const connection = this[kFrontConnection] as FrontConnection
    const request = connection.#parsing
    if (request === null) return
    try {
      request.push(chunk)
    } catch (error) {
      connection.#callbackFailed(error)
    }
  }

  static #parserOnMessageComplete (this: OwnedParser): void {
    const connection = this[kFrontConnection] as FrontConnection
    // Trailer lines of a chunked body come through kOnHeaders: they are dropped here, never
    // left to be read as the next request's headers.
    if (connection.#headerLines.length > 0) connection.#headerLines = []
    connection.#url = ''
    const request = connection.#parsing
    if (request === null) return
    connection.#parsing = null
    try {
      request.complete()
    } catch (error) {
      connection.#callbackFailed(error)
    }
    // A body stream that was full when its last piece came never asks for more: reading goes on.
    connection.bodyWanted()
  }

  static #socketOnRead (this: OwnedSocket, length: number, buffer: Buffer): boolean {
    (this[kFrontConnection] as FrontConnection).#onRead(buffer, length)
    return true // pausing stops the handle itself (#updateReading)
  }

  static #socketOnEnd (this: OwnedSocket): void {
    (this[kFrontConnection] as FrontConnection).#onEnd()
  }

  static #socketOnClose (this: OwnedSocket): void {
    (this[kFrontConnection] as FrontConnection).#onClose()
  }

  #onEnd (): void {
    if (this.#handOff !== null) return
    this.#parser?.finish()
    // As node:http (without httpAllowHalfOpen): the client's end closes the connection, and the
    // close aborts what is in flight, so an upstream generation for a client that left stops.
    const socket = this.socket
    // Nothing in flight and every byte with the kernel: closing sends the FIN that ending would,
    // without the shutdown request and the stream's finish before it.
    if (this.#active === null && this.#queue.length === 0 && socket.writableLength === 0) socket.destroy()
    else socket.destroySoon()
  }

  #onClose (): void {
    if (this.#closed) return
    this.#detach()
    this.#parsing?.abort()
    this.#parsing = null
    for (const request of this.#queue) request.abort()
    this.#queue = []
    const active = this.#active
    if (active !== null && !active.finished) active.emitClose()
  }

  #detach (): void {
    this.#closed = true
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    this.#parserless?.delete(this)
    this.#parserless = null
    const parser = this.#parser
    if (parser === null) return
    parser.remove()
    parser.socket = null
    // Not inside the parser's own call stack: node:http closes its parsers the same way.
    setImmediate(closeParser, parser)
  }
}

/** A read in the shared buffer of a socket the front gave away: into its stream, as a copy. */
function pushCopy (this: Socket, length: number, buffer: Buffer): boolean {
  return this.push(Buffer.from(buffer.subarray(0, length)))
}

function closeParser (parser: HTTPParserInstance): void {
  parser.close()
}

function continueConnection (connection: FrontConnection): void {
  connection.continue()
}

function onKeepAliveTimer (connection: FrontConnection): void {
  connection.keepAliveCheck()
}

/** node:http's private key of a server's connection list (set once the server listens), found once. */
let connectionsSymbol: symbol | undefined

function connectionsOf (server: Server): unknown {
  // Listing a server's own symbols on every connection cost about 30 µs of each one's set-up.
  if (connectionsSymbol === undefined) {
    connectionsSymbol = Object.getOwnPropertySymbols(server).find((candidate) => candidate.description === 'http.server.connections')
    if (connectionsSymbol === undefined) return undefined
  }
  return (server as unknown as Record<symbol, unknown>)[connectionsSymbol]
}

/**
 * Put the front before a node:http server's own connection handling. Connections the front
 * cannot take (no native stream handle, `maxRequestsPerSocket` set) go straight to node:http.
 */
export function installFront (server: Server, options: FrontOptions): FrontStats {
  const stats: FrontStats = { connections: 0, handOffs: { route: 0, version: 0, close: 0, expect: 0, upgrade: 0 }, bypassed: 0, plainRequests: 0 }
  const nodeListeners = server.listeners('connection') as ConnectionListener[]
  server.removeAllListeners('connection')
  // Connections without a parser are not in node:http's connection list: the server's two ways
  // of closing connections from its side visit them too (server.close() calls the first).
  const parserless = new Set<FrontConnection>()
  const closeIdleConnections = server.closeIdleConnections
  server.closeIdleConnections = function (this: Server) {
    closeIdleConnections.call(this)
    for (const connection of parserless) connection.closeIfIdle()
  }
  const closeAllConnections = server.closeAllConnections
  server.closeAllConnections = function (this: Server) {
    closeAllConnections.call(this)
    for (const connection of parserless) connection.socket.destroy()
  }
  server.on('connection', (socket: FrontSocket) => {
    const handle = socket._handle
    // Without node:net's `onread` keys (another Node than the one this was written for), node:http serves every connection.
    if (ONREAD_KEYS === null || handle === null || handle.isStreamBase !== true || handle._consumed === true || (server.maxRequestsPerSocket ?? 0) > 0) {
      stats.bypassed++
      for (const listener of nodeListeners) listener.call(server, socket)
      return
    }
    // eslint-disable-next-line no-new
    new FrontConnection(server, socket, handle, options, nodeListeners, parserless, stats)
  })
  return stats
}
