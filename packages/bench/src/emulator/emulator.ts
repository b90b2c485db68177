import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { EmulatedApiError, invalidRequest, notFound } from './api-error.js'
import { BatchStore } from './batches.js'
import { ControlHeaderError, DEFAULT_CONTROLS, type EmulatorControls, resolveControls } from './controls.js'
import { Exchange } from './exchange.js'
import { FileStore } from './files.js'
import { MessageScriptCache } from './message-script.js'
import { countTokens, createMessage } from './messages.js'
import { listModels, retrieveModel } from './models.js'

export interface EmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port to listen on; 0 picks a free one. Default 0. */
  port?: number
  /**
   * Accepted credentials (`x-api-key` or `Authorization: Bearer`). Unset: any
   * non-empty key is accepted. A request without any key is always 401.
   */
  apiKeys?: readonly string[]
  /** Controls applied when a request does not send the matching `x-emulator-*` header. */
  defaults?: Partial<EmulatorControls>
  /** Server `keepAliveTimeout` in ms. Default 5000. */
  keepAliveTimeoutMs?: number
  /** Time from creation until a message batch can end, in ms. Default 0: it ends on its first read. */
  batchProcessingMs?: number
  /** How many requests `requests` keeps (a ring, oldest dropped first); 0 records none. Default 1000. */
  recordLimit?: number
  /** Bytes of each request body kept in `requests`. Default 1 MiB. */
  recordBodyLimitBytes?: number
}

export interface EmulatorStats {
  /** TCP connections accepted since start or `resetStats()`. */
  connections: number
  /** TCP connections open now. */
  activeConnections: number
  /** Requests received since start or `resetStats()`. */
  requests: number
  /** Requests whose client went away before the response finished. */
  aborted: number
  /** Requests whose response was written completely. */
  completed: number
  /** Requests whose socket the emulator destroyed on purpose (`x-emulator-drop-after`, `resetNextReusedRequests`). */
  dropped: number
}

export interface RecordedRequest {
  method: string
  url: string
  /** Header names and values as received, alternating, as node gives them. */
  rawHeaders: string[]
  headers: IncomingHttpHeaders
  /** The request body, cut to `recordBodyLimitBytes`. */
  body: Buffer
  /** Size of the whole body in bytes. */
  bodySize: number
  bodyTruncated: boolean
  /** 1-based id of the TCP connection, in accept order. */
  connectionId: number
  /** The connection had carried an earlier request (keep-alive reuse). */
  reusedConnection: boolean
  /** The socket was destroyed by `resetNextReusedRequests` before the body was read (body is empty). */
  reset: boolean
  /** `Date.now()` when the body was read (or the socket reset). */
  receivedAt: number
}

export interface Emulator {
  /** `http://host:port`, no trailing slash. */
  readonly url: string
  readonly port: number
  stats(): EmulatorStats
  /** Zeroes the counters (not `activeConnections`, a gauge). */
  resetStats(): void
  /** The last `recordLimit` requests, oldest first; the same array throughout, so `requests.length = 0` clears it. */
  readonly requests: RecordedRequest[]
  lastRequest(): RecordedRequest | undefined
  /**
   * The next `count` requests that arrive on an already used (keep-alive)
   * connection get their socket reset before any response byte, like a stale
   * pooled socket. Replaces any previous count.
   */
  resetNextReusedRequests(count: number): void
  /** Stops listening and destroys every connection, in-flight responses included. */
  close(): Promise<void>
}

interface ConnectionState {
  id: number
  requests: number
}

const EMPTY = Buffer.alloc(0)
const DEFAULT_RECORD_LIMIT = 1000
const DEFAULT_RECORD_BODY_LIMIT_BYTES = 1024 * 1024

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
    })
    request.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)))
    request.once('error', reject)
    request.once('close', () => {
      if (!request.complete) reject(new Error('request aborted before its body ended'))
    })
  })
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw notFound('Not Found')
  }
}

/**
 * Starts a local emulation of the Anthropic HTTP API on loopback. Behaviour per
 * request is steered by `x-emulator-*` headers (see `EmulatorControls`).
 */
export async function createEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const host = options.host ?? '127.0.0.1'
  const defaults: Readonly<EmulatorControls> = Object.freeze({ ...DEFAULT_CONTROLS, ...options.defaults })
  const apiKeys = options.apiKeys === undefined ? undefined : new Set(options.apiKeys)
  const recordLimit = options.recordLimit ?? DEFAULT_RECORD_LIMIT
  const recordBodyLimit = options.recordBodyLimitBytes ?? DEFAULT_RECORD_BODY_LIMIT_BYTES
  const scripts = new MessageScriptCache()
  const batches = new BatchStore(scripts, options.batchProcessingMs ?? 0)
  const files = new FileStore()
  const attempts = new Map<string, number>()
  const connections = new WeakMap<Socket, ConnectionState>()
  const requests: RecordedRequest[] = []
  const counters = { connections: 0, activeConnections: 0, requests: 0, aborted: 0, completed: 0, dropped: 0 }
  let connectionCount = 0
  let pendingResets = 0

  const server = createServer({ noDelay: true, requestTimeout: 0 })
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000

  server.on('connection', (socket: Socket) => {
    counters.connections++
    counters.activeConnections++
    connections.set(socket, { id: ++connectionCount, requests: 0 })
    socket.once('close', () => {
      counters.activeConnections--
    })
  })

  function record(request: IncomingMessage, body: Buffer, connection: ConnectionState, reused: boolean, reset: boolean): void {
    if (recordLimit === 0) return
    const truncated = body.length > recordBodyLimit
    requests.push({
      method: request.method ?? '',
      url: request.url ?? '',
      rawHeaders: request.rawHeaders,
      headers: request.headers,
      body: truncated ? Buffer.from(body.subarray(0, recordBodyLimit)) : body,
      bodySize: body.length,
      bodyTruncated: truncated,
      connectionId: connection.id,
      reusedConnection: reused,
      reset,
      receivedAt: Date.now(),
    })
    if (requests.length > recordLimit) requests.splice(0, requests.length - recordLimit)
  }

  function authenticate(headers: IncomingHttpHeaders): void {
    const apiKey = single(headers['x-api-key'])?.trim()
    const bearer = /^Bearer\s+(\S.*)$/i.exec(headers.authorization ?? '')?.[1]?.trim()
    const presented = [apiKey, bearer].filter((key): key is string => key !== undefined && key !== '')
    if (presented.length === 0) throw new EmulatedApiError(401, 'x-api-key header is required')
    if (apiKeys !== undefined && !presented.some((key) => apiKeys.has(key))) {
      throw new EmulatedApiError(401, 'invalid x-api-key')
    }
  }

  /** The status this request must fail with (`x-emulator-status`, `x-emulator-fail-first`), or 0. */
  function failureStatus(controls: Readonly<EmulatorControls>): number {
    if (controls.failFirst === 0) return controls.status
    if (controls.attemptKey === null) throw invalidRequest('x-emulator-fail-first requires x-emulator-attempt-key')
    const attempt = (attempts.get(controls.attemptKey) ?? 0) + 1
    attempts.set(controls.attemptKey, attempt)
    return attempt <= controls.failFirst ? controls.status || 529 : 0
  }

  function route(exchange: Exchange): Promise<void> {
    const method = exchange.request.method
    const segments = exchange.path.split('/')
    // segments[0] is the empty string before the leading slash.
    const [, version, resource, first, second, third] = segments
    if (version !== 'v1' || segments.length > 6) throw notFound('Not Found')
    if (resource === 'messages') {
      if (first === undefined && method === 'POST') return createMessage(exchange, scripts)
      if (first === 'count_tokens' && second === undefined && method === 'POST') return countTokens(exchange)
      if (first === 'batches') {
        if (second === undefined) {
          if (method === 'POST') return batches.create(exchange)
          if (method === 'GET') return batches.list(exchange)
        } else if (third === undefined) {
          if (method === 'GET') return batches.retrieve(exchange, decodeSegment(second))
          if (method === 'DELETE') return batches.delete(exchange, decodeSegment(second))
        } else if (segments.length === 6) {
          if (third === 'cancel' && method === 'POST') return batches.cancel(exchange, decodeSegment(second))
          if (third === 'results' && method === 'GET') return batches.results(exchange, decodeSegment(second))
        }
      }
    } else if (resource === 'models' && second === undefined && method === 'GET') {
      return first === undefined ? listModels(exchange) : retrieveModel(exchange, decodeSegment(first))
    } else if (resource === 'files' && third === undefined) {
      if (first === undefined) {
        if (method === 'POST') return files.upload(exchange)
        if (method === 'GET') return files.list(exchange)
      } else if (second === undefined) {
        if (method === 'GET') return files.retrieve(exchange, decodeSegment(first))
        if (method === 'DELETE') return files.delete(exchange, decodeSegment(first))
      } else if (second === 'content' && method === 'GET') {
        return files.download(exchange, decodeSegment(first))
      }
    }
    throw notFound('Not Found')
  }

  async function respond(request: IncomingMessage, response: ServerResponse, body: Buffer, markDropped: () => void): Promise<void> {
    const url = request.url ?? '/'
    const queryStart = url.indexOf('?')
    let controls = defaults
    let controlError: ControlHeaderError | undefined
    try {
      controls = resolveControls(request.headers, defaults)
    } catch (error) {
      if (!(error instanceof ControlHeaderError)) throw error
      controlError = error
    }
    const exchange = new Exchange({
      request,
      response,
      body,
      controls,
      path: queryStart < 0 ? url : url.slice(0, queryStart),
      queryString: queryStart < 0 ? '' : url.slice(queryStart + 1),
      origin: `http://${request.headers.host ?? hostPort}`,
      markDropped,
    })
    try {
      authenticate(request.headers)
      if (request.headers['anthropic-version'] === undefined) throw invalidRequest('anthropic-version: header is required')
      if (controlError !== undefined) throw invalidRequest(controlError.message)
      if (controls.redirect !== null) return await exchange.send(307, null, EMPTY, { location: controls.redirect })
      const failure = failureStatus(controls)
      if (failure !== 0) return await exchange.sendError(failure, controls.errorMessage ?? undefined)
      await route(exchange)
    } catch (error) {
      if (exchange.closed) return
      if (response.headersSent) {
        response.destroy()
        return
      }
      if (error instanceof EmulatedApiError) await exchange.sendError(error.status, error.message, error.type)
      else await exchange.sendError(500, `Emulator failure: ${(error as Error).message}`)
    }
  }

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    counters.requests++
    const connection = connections.get(request.socket) ?? { id: 0, requests: 0 }
    const reused = connection.requests > 0
    connection.requests++
    let dropped = false
    const markDropped = (): void => {
      dropped = true
    }
    response.once('close', () => {
      if (response.writableFinished) counters.completed++
      else if (dropped) counters.dropped++
      else counters.aborted++
    })
    if (reused && pendingResets > 0) {
      pendingResets--
      markDropped()
      record(request, EMPTY, connection, reused, true)
      request.socket.resetAndDestroy()
      return
    }
    readBody(request)
      .then((body) => {
        record(request, body, connection, reused, false)
        return respond(request, response, body, markDropped)
      })
      .catch(() => {
        if (!response.destroyed) response.destroy()
      })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`
  let closing: Promise<void> | undefined

  return {
    url: `http://${hostPort}`,
    port,
    stats: () => ({ ...counters }),
    resetStats: () => {
      counters.connections = 0
      counters.requests = 0
      counters.aborted = 0
      counters.completed = 0
      counters.dropped = 0
    },
    requests,
    lastRequest: () => requests.at(-1),
    resetNextReusedRequests: (count: number) => {
      pendingResets = count
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
