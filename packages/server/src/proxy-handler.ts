import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  AdapterError,
  type Exchange,
  type ForwardOptions,
  prepareRequestHead,
  prepareRequestHeaders,
  type RequestHeaderOptions,
  type UpstreamClient,
} from '@apt/adapter'
import type { FastifyBaseLogger } from 'fastify'
import { ERROR_POLICY, sendError } from './errors.js'
import { FrontRequest, type FrontResponse } from './front.js'
import type { RequestRecord } from './metrics.js'
import type { AuthOptions, BodyLimits } from './options.js'
import { classifyRoute, type RouteName } from './routes-table.js'
import { createUsageTap, type UsageFacts, type UsageTap } from './usage-tap.js'

export interface ProxyState {
  draining: boolean
  inFlightRequests: number
  inFlightStreams: number
}

export interface ProxyContext {
  upstream: UpstreamClient
  auth: AuthOptions
  limits: BodyLimits
  publicBaseUrl: string | undefined
  defaultHeaders: readonly string[]
  state: ProxyState
  observe: (record: RequestRecord, exchange: Exchange | null, log: FastifyBaseLogger) => void
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Constant-time membership test: every configured key is compared, each in constant time. */
export function createKeyCheck (keys: readonly string[]): (presented: string) => boolean {
  const digests = keys.map(sha256)
  return (presented) => {
    const digest = sha256(presented)
    let match = false
    for (const candidate of digests) match = timingSafeEqual(candidate, digest) || match
    return match
  }
}

/** What the handler serves: a request from node:http or from the front (./front.ts). */
export type ProxyRequest = IncomingMessage | FrontRequest
export type ProxyResponse = ServerResponse | FrontResponse

function presentedKey (request: ProxyRequest): string | undefined {
  const apiKey = request.headers['x-api-key']
  if (typeof apiKey === 'string' && apiKey !== '') return apiKey
  const authorization = request.headers.authorization
  if (authorization !== undefined && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ') {
    return authorization.slice(7).trim()
  }
  return undefined
}

/** `results_url` values point at the upstream; point them at the proxy so downloads come through it. */
export function createResultsUrlRewriter (publicBaseUrl: string): (body: Buffer) => Buffer {
  const base = publicBaseUrl.replace(/\/+$/, '')
  const pattern = /("results_url"\s*:\s*")[^"]*?(\/v1\/)/g
  return (body) => {
    const text = body.toString('utf8')
    if (!text.includes('"results_url"')) return body
    return Buffer.from(text.replace(pattern, `$1${base}$2`), 'utf8')
  }
}

async function * limitBody (request: AsyncIterable<Buffer>, limit: number): AsyncGenerator<Buffer> {
  let received = 0
  for await (const chunk of request) {
    received += (chunk as Buffer).length
    if (received > limit) {
      throw new AdapterError('APT_ADAPTER_BODY_TOO_LARGE', `Request body exceeds the ${limit} byte limit for this endpoint`)
    }
    yield chunk as Buffer
  }
}

/**
 * The whole body of a request node:http read, as one buffer, or `onAbort` if the client leaves
 * first (as FrontRequest.collect does for the front's). The listeners stay on the request until it
 * closes, so they let go of both callbacks once one has run: the callbacks share the proxy
 * handler's scope, with the request's prepared headers, which a stream would otherwise keep.
 */
function collectBody (request: IncomingMessage, onBody: (body: Buffer) => void, onAbort: () => void): void {
  let chunks: Buffer[] | null = []
  let deliver: ((body: Buffer) => void) | null = onBody
  let abort: (() => void) | null = onAbort
  request.on('data', (chunk: Buffer) => { chunks?.push(chunk) })
  request.once('end', () => {
    const body = chunks as Buffer[]
    const callback = deliver as (body: Buffer) => void
    chunks = null
    deliver = null
    abort = null
    callback(body.length === 1 ? body[0] as Buffer : Buffer.concat(body))
  })
  request.once('close', () => {
    const callback = abort
    chunks = null
    deliver = null
    abort = null
    if (callback !== null) callback()
  })
}

/**
 * The `/v1/*` handler: checks what must be checked before the upstream is
 * contacted (draining, managed auth, declared size), then hands the raw
 * request and response to the adapter. Bodies are never parsed.
 */
export function createProxyHandler (context: ProxyContext): (request: ProxyRequest, response: ProxyResponse, log: FastifyBaseLogger) => void {
  const { upstream, auth, limits, state, observe } = context
  const checkKey = auth.mode === 'managed' ? createKeyCheck(auth.proxyKeys) : null
  const headerOptions: RequestHeaderOptions = {
    credentials: auth.mode === 'managed' ? ['x-api-key', auth.upstreamApiKey] : null,
    defaults: context.defaultHeaders,
  }
  const rewriteHeaderOptions: RequestHeaderOptions = { ...headerOptions, dropAcceptEncoding: true }
  const replayLimit = upstream.options.replayBodyLimitBytes

  const onResponseStart = (exchange: Exchange): undefined => {
    if (exchange.isEventStream) state.inFlightStreams++
    return undefined
  }
  // Messages responses get a side tap that reads usage, model and time to first token.
  const onMessagesResponseStart = (exchange: Exchange): UsageTap | undefined => {
    if (exchange.isEventStream) state.inFlightStreams++
    if (exchange.statusCode !== 200) return undefined
    return createUsageTap(exchange.isEventStream ? 'sse' : 'json', exchange.contentEncoding)
  }
  const plainOptions: ForwardOptions = { onResponseStart }
  const messagesOptions: ForwardOptions = { onResponseStart: onMessagesResponseStart }
  const rewriteOptions: ForwardOptions | null = context.publicBaseUrl === undefined
    ? null
    : { onResponseStart, rewriteBody: createResultsUrlRewriter(context.publicBaseUrl) }

  function limitFor (route: RouteName, method: string | undefined): number {
    if (method === 'POST') {
      if (route === 'batches') return limits.batchBytes
      if (route === 'files') return limits.fileBytes
    }
    return limits.jsonBytes
  }

  function reject (request: ProxyRequest, response: ServerResponse, log: FastifyBaseLogger, started: number, route: RouteName, method: string, code: 'APT_SERVER_DRAINING' | 'APT_SERVER_UNAUTHORIZED' | 'APT_SERVER_BODY_TOO_LARGE', message: string): void {
    sendError(response, code, message, { close: code === 'APT_SERVER_DRAINING' })
    state.inFlightRequests--
    observe(rejectedRecord(route, request.url as string, method, ERROR_POLICY[code].status, started, code), null, log)
  }

  /**
   * The end of an exchange: its record, observed once the usage tap is done. Made here rather than
   * inside `proxy`, whose closures share one context: a closure made there would hold the
   * request's prepared headers (and the rest of that scope) for as long as a stream lasts.
   * `nodeRequest` is the IncomingMessage of a request node:http read, null for the front's.
   */
  function completion (route: RouteName, url: string, method: string, started: number, response: ServerResponse, nodeRequest: IncomingMessage | null, log: FastifyBaseLogger): (exchange: Exchange) => void {
    return (exchange: Exchange): void => {
      state.inFlightRequests--
      if (exchange.isEventStream && exchange.headersSent) state.inFlightStreams--
      const error = exchange.error
      let status = exchange.statusCode
      if (error !== null && !exchange.headersSent) {
        if (exchange.clientAborted) status = 499
        else {
          // On node:http a body left half-read (413 past the limit, an upstream that failed
          // mid-upload) would stall the connection: the reply closes it instead. (The front reads
          // and drops the rest itself, and keeps the connection.)
          sendError(response, error.code, error.message, { close: nodeRequest !== null && !nodeRequest.complete })
          status = ERROR_POLICY[error.code].status
        }
      }
      const record: RequestRecord = {
        route,
        path: url,
        method,
        status,
        durationMs: exchange.endedAt - started,
        ttfbMs: exchange.headersAt === 0 ? -1 : exchange.headersAt - started,
        bytesOut: exchange.bytesOut,
        isStream: exchange.isEventStream,
        errorCode: error?.code,
        overheadMs: exchange.overheadMs,
        usage: undefined,
        ttftMs: -1,
      }
      const tap = exchange.observer as UsageTap | undefined
      if (tap === undefined) observe(record, exchange, log)
      else {
        tap.end((facts: UsageFacts) => {
          record.usage = facts
          if (facts.firstTokenAt > 0) record.ttftMs = facts.firstTokenAt - started
          observe(record, exchange, log)
        })
      }
    }
  }

  return function proxy (request, frontOrNodeResponse, log) {
    // A FrontResponse has the part of ServerResponse the adapter and the error replies use.
    const response = frontOrNodeResponse as ServerResponse
    const started = performance.now()
    const url = request.url as string
    const method = request.method as string
    const route = classifyRoute(url)
    state.inFlightRequests++

    if (state.draining) {
      reject(request, response, log, started, route, method, 'APT_SERVER_DRAINING', 'The proxy is shutting down; retry the request')
      return
    }
    if (checkKey !== null) {
      const key = presentedKey(request)
      if (key === undefined || !checkKey(key)) {
        reject(request, response, log, started, route, method, 'APT_SERVER_UNAUTHORIZED', key === undefined ? 'Missing proxy API key (x-api-key or Authorization: Bearer)' : 'Invalid proxy API key')
        return
      }
    }

    const limit = limitFor(route, method)
    const front = request instanceof FrontRequest
    let length = -1
    let transferEncoding: boolean
    if (front) {
      length = request.contentLength
      transferEncoding = request.hasTransferEncoding
    } else {
      const declared = request.headers['content-length']
      if (declared !== undefined) length = Number(declared)
      transferEncoding = request.headers['transfer-encoding'] !== undefined
    }
    if (length > limit) {
      reject(request, response, log, started, route, method, 'APT_SERVER_BODY_TOO_LARGE', `Request body of ${length} bytes exceeds the ${limit} byte limit for this endpoint`)
      return
    }

    const rewrite = rewriteOptions !== null && route === 'batches'
    const prepare = rewrite ? rewriteHeaderOptions : headerOptions
    // A plain request the front read without llhttp has its header lines forwarded as bytes.
    const plainHead = front ? request.plainHead : null
    const headers = (plainHead !== null && prepareRequestHead(plainHead, (request as FrontRequest).plainLines as number[], prepare)) ||
      prepareRequestHeaders(request.rawHeaders, prepare)
    // Everything read from the client's header lines has been read (the key, the framing).
    if (front) request.releaseHeaders()
    const options = rewrite ? rewriteOptions : route === 'messages' || route === 'complete' ? messagesOptions : plainOptions

    const done = completion(route, url, method, started, response, front ? null : request as IncomingMessage, log)

    if (length === 0 || (length === -1 && !transferEncoding)) {
      upstream.forward({ method, path: url, headers, body: null, receivedAt: started }, response, done, options)
    } else if (front) {
      if (length > 0 && length <= replayLimit) {
        request.collect((body) => {
          upstream.forward({ method, path: url, headers, body, receivedAt: started }, response, done, options)
        }, () => {
          state.inFlightRequests--
          observe(rejectedRecord(route, url, method, 499, started, 'APT_ADAPTER_CLIENT_ABORTED'), null, log)
        })
      } else {
        const body = request.stream()
        upstream.forward({ method, path: url, headers, body: length > 0 ? body : limitBody(body, limit), receivedAt: started }, response, done, options)
      }
    } else if (length > 0 && length <= replayLimit) {
      // Small bodies (nearly always in the first packet) are sent as one buffer, so a stale socket can replay them.
      collectBody(request as IncomingMessage, (body) => {
        upstream.forward({ method, path: url, headers, body, receivedAt: started }, response, done, options)
      }, () => {
        state.inFlightRequests--
        observe(rejectedRecord(route, url, method, 499, started, 'APT_ADAPTER_CLIENT_ABORTED'), null, log)
      })
    } else if (length > 0) {
      upstream.forward({ method, path: url, headers, body: request, receivedAt: started }, response, done, options)
    } else {
      upstream.forward({ method, path: url, headers, body: limitBody(request, limit), receivedAt: started }, response, done, options)
    }
  }
}

function rejectedRecord (route: RouteName, path: string, method: string, status: number, started: number, code: string): RequestRecord {
  return {
    route, path, method, status, durationMs: performance.now() - started, ttfbMs: -1, bytesOut: 0, isStream: false,
    errorCode: code, overheadMs: -1, usage: undefined, ttftMs: -1,
  }
}
