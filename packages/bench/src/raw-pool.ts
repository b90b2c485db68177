import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { HTTPParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageComplete, type Parser } from './llhttp.js'
import type { Dispatcher } from 'undici'

/**
 * The load generator's HTTP/1.1 client: keep-alive connections that send one request, built once
 * as bytes, over and over, and read the answers with Node's llhttp. It does what the bench needs
 * and nothing else (no redirects, no retries, no pipelining, no request streaming), and costs about
 * half of an undici `Pool` per request (32-38 against 62-69 µs here), which is the difference
 * between a load side that outruns a proxy and one that does not (docs/benchmark.md).
 *
 * Handlers use undici's original handler methods, so the same objects work with either.
 */
export interface RawHandler {
  onHeaders (statusCode: number): unknown
  /** A view of the shared read buffer over plain HTTP: valid only during the call (copy it to keep it). */
  onData (chunk: Buffer): unknown
  onComplete (): void
  onError (error: Error): void
}

export interface RawPoolOptions {
  /** Most connections open at once; dispatches beyond them wait in order. */
  connections: number
}

/** The bytes of `request` as an HTTP/1.1 request to `origin`, with `host` and `content-length`. */
export function encodeRequest (origin: URL, request: Dispatcher.DispatchOptions): Buffer {
  let head = `${request.method} ${request.path} HTTP/1.1\r\nhost: ${origin.host}\r\n`
  const headers = request.headers
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) head += `${String(headers[i])}: ${String(headers[i + 1])}\r\n`
  } else if (headers !== null && headers !== undefined) {
    for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
      if (value === undefined) continue
      for (const item of Array.isArray(value) ? value : [value]) head += `${name}: ${item}\r\n`
    }
  }
  const body = request.body === undefined || request.body === null ? null : Buffer.from(request.body as Buffer | string)
  if (body !== null || request.method === 'POST' || request.method === 'PUT') head += `content-length: ${body?.length ?? 0}\r\n`
  head += '\r\n'
  return body === null ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body])
}

/**
 * The buffer every plain-HTTP connection's socket reads into (the socket's `onread`): a read is
 * parsed at once and its body pieces are handed on as views, so no Buffer, stream push or 'data'
 * event per read, the load side's largest cost per streamed event (docs/benchmark.md).
 */
let sharedReadBuffer: Buffer | null = null
const READ_BUFFER_BYTES = 64 * 1024

class RawConnection {
  readonly socket: Socket
  readonly #pool: RawPool
  handler: RawHandler | null = null
  #keepAlive = true
  #error: Error | null = null
  closed = false

  constructor (pool: RawPool, origin: URL) {
    this.#pool = pool
    const port = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80)
    const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname
    const parser: Parser = new HTTPParser()
    const onParsed = (result: unknown): void => {
      if (result instanceof Error) this.destroy(new Error(`invalid response (${(result as Error & { code?: string }).code ?? result.message})`))
    }
    if (origin.protocol === 'https:') {
      this.socket = tlsConnect({ host, port, servername: host })
      this.socket.on('data', (chunk: Buffer) => { onParsed(parser.execute(chunk)) })
    } else {
      sharedReadBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES)
      const buffer = sharedReadBuffer
      this.socket = netConnect({ host, port, onread: { buffer, callback: (bytes: number): boolean => { onParsed(parser.execute(buffer.subarray(0, bytes))); return true } } })
    }
    this.socket.setNoDelay(true)
    parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone)
    parser[kOnHeaders] = () => {}
    parser[kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, _method: unknown, _url: unknown, statusCode: number,
      _statusText: unknown, _upgrade: boolean, keepAlive: boolean): number => {
      this.#keepAlive = keepAlive
      // 1xx: llhttp reports the final response next, as a message of its own.
      if (statusCode >= 200) this.handler?.onHeaders(statusCode)
      return 0
    }
    parser[kOnBody] = (chunk: Buffer) => { this.handler?.onData(chunk) }
    parser[kOnMessageComplete] = () => {
      const handler = this.handler
      if (handler === null) return
      this.handler = null
      if (!this.#keepAlive) this.destroy(null)
      else this.#pool.release(this)
      handler.onComplete()
    }
    this.socket.on('end', () => {
      // A body delimited by the end of the connection completes here.
      if (this.handler !== null) parser.finish()
      this.destroy(null)
    })
    this.socket.on('error', (error) => { this.#error ??= error })
    this.socket.on('close', () => { this.#closed() })
  }

  send (handler: RawHandler): void {
    this.handler = handler
    this.socket.write(this.#pool.bytes)
  }

  destroy (error: Error | null): void {
    if (error !== null) this.#error ??= error
    this.socket.destroy()
    this.#closed()
  }

  #closed (): void {
    if (this.closed) return
    this.closed = true
    // The parser is not closed here: this may run inside one of its callbacks (execute is still
    // on the stack). Unreferenced, it is freed by the garbage collector, as node:http's are.
    const handler = this.handler
    this.handler = null
    this.#pool.removed(this)
    handler?.onError(this.#error ?? new Error('other side closed'))
  }
}

/** Connections to one origin for one request; see `RawHandler`. */
export class RawPool {
  readonly bytes: Buffer
  readonly #origin: URL
  readonly #limit: number
  readonly #all = new Set<RawConnection>()
  readonly #free: RawConnection[] = []
  readonly #queue: RawHandler[] = []
  #closing: Error | null = null
  #allClosed: (() => void) | null = null
  #closed: Promise<void> | null = null

  constructor (url: string, request: Dispatcher.DispatchOptions, options: RawPoolOptions) {
    this.#origin = new URL(url)
    this.bytes = encodeRequest(this.#origin, request)
    this.#limit = Math.max(1, options.connections)
  }

  dispatch (handler: RawHandler): void {
    const closing = this.#closing
    if (closing !== null) {
      queueMicrotask(() => handler.onError(closing))
      return
    }
    const connection = this.#free.pop() ?? (this.#all.size < this.#limit ? this.#open() : undefined)
    if (connection === undefined) this.#queue.push(handler)
    else connection.send(handler)
  }

  /** A connection whose response completed: it serves the next waiting dispatch, or waits. */
  release (connection: RawConnection): void {
    if (this.#closing !== null) {
      connection.destroy(null)
      return
    }
    const next = this.#queue.shift()
    if (next !== undefined) connection.send(next)
    else this.#free.push(connection)
  }

  removed (connection: RawConnection): void {
    this.#all.delete(connection)
    const index = this.#free.indexOf(connection)
    if (index !== -1) this.#free.splice(index, 1)
    if (this.#closing === null) {
      const next = this.#queue.shift()
      if (next !== undefined) this.#open().send(next)
    } else if (this.#all.size === 0) {
      this.#allClosed?.()
    }
  }

  /** Fails every waiting and in-flight dispatch with `error` and closes every connection. */
  destroy (error: Error): Promise<void> {
    return this.#shut(error, true)
  }

  /** Closes idle connections now and the others as their responses complete. */
  close (): Promise<void> {
    return this.#shut(new Error('the pool is closed'), false)
  }

  #shut (error: Error, failInFlight: boolean): Promise<void> {
    this.#closing ??= error
    this.#closed ??= this.#all.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => { this.#allClosed = resolve })
    for (const handler of this.#queue.splice(0)) handler.onError(error)
    for (const connection of [...this.#all]) {
      if (failInFlight || connection.handler === null) connection.destroy(failInFlight ? error : null)
    }
    return this.#closed
  }

  #open (): RawConnection {
    const connection = new RawConnection(this, this.#origin)
    this.#all.add(connection)
    return connection
  }
}
