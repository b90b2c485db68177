import { type ConnectionStats, createUpstreamClient, type UpstreamClient } from '@apt/adapter'
import { createMonitor, DEFAULT_EVENT_LOOP_RESOLUTION_MS, type Monitor, type RequestSample } from '@apt/monitor'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance, LogController } from 'fastify'
import type pino from 'pino'
import { dashboardRoute } from './dashboard/index.js'
import { createModelLabeler } from './model-label.js'
import { errorBody, proxyRequestId, sendError } from './errors.js'
import { createServerMetrics, type RequestRecord } from './metrics.js'
import { DEFAULT_LIMITS, type ServerOptions } from './options.js'
import { type FrontRequest, type FrontResponse, type FrontStats, installFront } from './front.js'
import { createKeyCheck, createProxyHandler, type ProxyState } from './proxy-handler.js'
import { BatchedDestination, logRequest } from './request-log.js'
import { ROUTE_NAMES, type RouteName } from './routes-table.js'

/**
 * Paths pino never prints. No wildcards: fast-redact compiles plain paths into
 * a few property checks, while wildcard paths cost a walk on every log call.
 * The proxy's own lines never carry headers or keys; these guard the rest.
 */
export const REDACT_PATHS = [
  'req.headers["x-api-key"]', 'req.headers.authorization', 'req.headers.cookie',
  'request.headers["x-api-key"]', 'request.headers.authorization', 'request.headers.cookie',
  'headers["x-api-key"]', 'headers.authorization', 'headers.cookie',
  'upstreamApiKey', 'auth.upstreamApiKey', 'auth.proxyKeys', 'proxyKeys',
]

/**
 * Malformed HTTP from a client (bad request line, oversized headers, ...) still
 * gets an Anthropic-shaped error, not Node's bare 400.
 */
function onClientError (error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const requestId = proxyRequestId()
  const body = JSON.stringify(errorBody('invalid_request_error', `Malformed HTTP request (${error.code ?? 'parse error'})`, requestId))
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nrequest-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`)
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** Throws when a configured header could not be sent as one valid header line. */
function checkHeader (name: string, value: string, what: string): void {
  if (!HEADER_NAME.test(name) || typeof value !== 'string' || !HEADER_VALUE.test(value)) {
    throw new TypeError(`${what} is not a valid HTTP header (control characters such as CR or LF are not allowed)`)
  }
}

/** Log lines are written in batches of this many bytes, and at least this often (ms). */
const LOG_BUFFER_BYTES = 16_384
const LOG_FLUSH_MS = 500

export interface AptState {
  readonly upstream: UpstreamClient
  readonly monitor: Monitor | null
  readonly draining: boolean
  /** Mark the proxy as draining: `/ready` turns 503, new `/v1/*` requests get 503, idle keep-alive sockets are closed. */
  startDrain (): void
  /** Requests and streams still running. */
  inFlight (): { requests: number, streams: number }
  /** The JSON served at `/anthropic/metrics`. */
  metricsSnapshot (): Record<string, unknown>
  stats (): ConnectionStats
}

declare module 'fastify' {
  interface FastifyInstance {
    apt: AptState
  }
}

interface RouteCounters { requests: number, errors: number, streams: number }

/**
 * Build the proxy app (not listening). `/v1/*` is forwarded for every method;
 * `/health`, `/ready`, `/anthropic/metrics` and `/metrics` are the proxy's own.
 */
export function buildServer (options: ServerOptions): FastifyInstance {
  // Configured values are written into upstream request heads as they are: refuse anything
  // that could end a header line (the key itself is never echoed). Checked before anything starts.
  const defaultHeaders: string[] = []
  for (const [name, value] of Object.entries(options.defaultHeaders ?? {})) {
    checkHeader(name, value, `defaultHeaders.${name}`)
    defaultHeaders.push(name.toLowerCase(), value)
  }
  if (options.auth?.mode === 'managed') checkHeader('x-api-key', options.auth.upstreamApiKey, 'auth.upstreamApiKey')
  const ownsUpstream = !('forward' in options.upstream)
  const upstream: UpstreamClient = ownsUpstream
    ? createUpstreamClient(options.upstream as Parameters<typeof createUpstreamClient>[0])
    : options.upstream as UpstreamClient
  const limits = { ...DEFAULT_LIMITS, ...options.limits }
  const ownsMonitor = options.monitor === undefined || (options.monitor !== false && !('record' in options.monitor))
  const monitor: Monitor | null = options.monitor === false
    ? null
    : ownsMonitor ? createMonitor(options.monitor as Parameters<typeof createMonitor>[0]) : options.monitor as Monitor
  const metricsEnabled = options.metrics?.enabled ?? true
  const metricsToken = options.metrics?.token

  // stdout gets an asynchronous, batched destination: a synchronous write per
  // request line costs a syscall on the hot path. A timer flushes quiet periods; it runs only
  // while lines wait (an interval woke an idle proxy twice a second).
  const logDestination = options.logger === false || options.logStream !== undefined
    ? undefined
    : new BatchedDestination({ fd: 1, batchBytes: LOG_BUFFER_BYTES, flushAfterMs: LOG_FLUSH_MS })
  // `/v1/*` on real connections skips Fastify's router, request objects and hooks: the front
  // (./front.ts) or, for requests it hands over, the node:http listener calls the proxy handler.
  let fastPath: ((request: IncomingMessage | FrontRequest, response: ServerResponse | FrontResponse) => void) | null = null
  const front = options.front ?? true
  let frontStats: FrontStats | null = null
  const app = Fastify({
    logger: options.logger === false
      ? false
      : {
          level: 'info',
          ...options.logger,
          redact: { paths: REDACT_PATHS, censor: '[redacted]' },
          ...(options.logStream === undefined && logDestination === undefined ? {} : { stream: (options.logStream ?? logDestination) as pino.DestinationStream }),
        },
    serverFactory (fastifyHandler) {
      const server = createHttpServer((request, response) => {
        if (fastPath !== null && (request.url as string).startsWith('/v1/')) fastPath(request, response)
        else fastifyHandler(request, response)
      })
      // Fastify's own defaults for the server it would have built: keep-alive 72 s,
      // no whole-request deadline (uploads of 500 MB may take long).
      server.keepAliveTimeout = 72_000
      server.requestTimeout = 0
      server.on('clientError', onClientError)
      // The front serves plain `/v1/*` requests without node:http's request and response objects.
      if (front) {
        frontStats = installFront(server, {
          handler: (request, response) => { (fastPath as NonNullable<typeof fastPath>)(request, response) },
          draining: () => state.draining,
          onError: (error) => { app.log.error({ err: error }, 'front connection failed') },
        })
      }
      return server
    },
    // One line per request is written by the proxy itself (with upstream facts), so Fastify's own pair is off.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    bodyLimit: limits.jsonBytes,
    // Fastify must not consume /v1 bodies: they stay on the raw request and stream upstream.
    forceCloseConnections: false,
  })

  const state: ProxyState = { draining: false, inFlightRequests: 0, inFlightStreams: 0 }
  let totalRequests = 0
  let totalErrors = 0
  const routeCounters = new Map<RouteName, RouteCounters>(ROUTE_NAMES.map((route) => [route, { requests: 0, errors: 0, streams: 0 }]))
  const statusCounts = new Map<number, number>()

  const metrics = createServerMetrics({
    processMetrics: options.metrics?.processMetrics ?? true,
    // The monitor (created above, in this same turn of the loop) samples the event loop too: the
    // same resolution makes the two samplers one wake-up (about 100 fewer a second when idle).
    eventLoopResolutionMs: (ownsMonitor ? (options.monitor as { eventLoopResolutionMs?: number } | undefined)?.eventLoopResolutionMs : undefined) ?? DEFAULT_EVENT_LOOP_RESOLUTION_MS,
    connectionStats: () => upstream.stats(),
    gauges: () => ({ inFlightRequests: state.inFlightRequests, inFlightStreams: state.inFlightStreams, draining: state.draining }),
    ...(monitor === null ? {} : { alerts: () => monitor.alerts().map((alert) => ({ id: alert.rule.id, firing: alert.state === 'firing' })) }),
    ...(front ? { front: () => frontStats } : {}),
  })
  if (monitor !== null) {
    monitor.onAlert((transition) => {
      const line = { alert: transition.rule.id, state: transition.state, value: transition.value, threshold: transition.rule.threshold }
      if (transition.state === 'firing') app.log.warn(line, 'alert firing')
      else app.log.info(line, 'alert resolved')
    })
  }
  const sample: { [K in keyof RequestSample]-?: RequestSample[K] | undefined } = {
    durationMs: 0, status: 0, bytes: undefined, route: undefined, error: undefined, ttfbMs: undefined, ttftMs: undefined, overheadUs: undefined,
  }
  // Token totals per model for the JSON view (model names bounded like the Prometheus labels).
  const usageModel = createModelLabeler()
  const usageByModel = new Map<string, { requests: number, input: number, output: number, cache_creation: number, cache_read: number }>()

  function observe (record: RequestRecord, exchange: { upstreamRequestId: string | undefined, reusedSocket: boolean, retried: boolean } | null, log: typeof app.log): void {
    totalRequests++
    const counters = routeCounters.get(record.route) as RouteCounters
    counters.requests++
    if (record.isStream) counters.streams++
    if (record.status >= 400 || record.errorCode !== undefined) {
      totalErrors++
      counters.errors++
    }
    statusCounts.set(record.status, (statusCounts.get(record.status) ?? 0) + 1)
    metrics.observe(record)
    const usage = record.usage?.usage
    if (usage !== undefined) {
      const model = usageModel(record.usage?.model)
      let totals = usageByModel.get(model)
      if (totals === undefined) {
        totals = { requests: 0, input: 0, output: 0, cache_creation: 0, cache_read: 0 }
        usageByModel.set(model, totals)
      }
      totals.requests++
      totals.input += usage.inputTokens
      totals.output += usage.outputTokens
      totals.cache_creation += usage.cacheCreationInputTokens
      totals.cache_read += usage.cacheReadInputTokens
    }
    if (monitor !== null) {
      // One reused sample object: the monitor reads it synchronously and keeps nothing.
      sample.durationMs = record.durationMs
      sample.status = record.status
      sample.bytes = record.bytesOut
      sample.route = record.route
      sample.error = record.errorCode !== undefined && record.status !== 499 ? record.errorCode : undefined
      sample.ttfbMs = record.ttfbMs >= 0 ? record.ttfbMs : undefined
      sample.ttftMs = record.ttftMs >= 0 ? record.ttftMs : undefined
      sample.overheadUs = record.overheadMs >= 0 ? record.overheadMs * 1000 : undefined
      monitor.record(sample as RequestSample)
    }
    logRequest(log, record, exchange)
  }


  const proxy = createProxyHandler({
    upstream,
    auth: options.auth ?? { mode: 'passthrough' },
    limits,
    publicBaseUrl: options.publicBaseUrl,
    defaultHeaders,
    state,
    observe,
  })

  let sweepTimer: NodeJS.Timeout | null = null
  const apt: AptState = {
    upstream,
    monitor,
    get draining () { return state.draining },
    startDrain () {
      if (state.draining) return
      state.draining = true
      // Keep-alive sockets that go idle while draining are closed so close() can finish.
      const sweep = (): void => {
        app.server.closeIdleConnections()
        sweepTimer?.refresh()
      }
      sweepTimer = setTimeout(sweep, options.drainSweepMs ?? 100).unref()
      app.server.closeIdleConnections()
    },
    inFlight: () => ({ requests: state.inFlightRequests, streams: state.inFlightStreams }),
    stats: () => upstream.stats(),
    metricsSnapshot () {
      const stats = upstream.stats()
      const routes: Record<string, RouteCounters> = {}
      for (const [route, counters] of routeCounters) routes[route] = { ...counters }
      return {
        timestamp: new Date().toISOString(),
        adapter_metrics: {
          status: state.draining ? 'draining' : 'healthy',
          initialized: true,
          request_count: stats.requests,
          connection_stats: {
            hits: stats.hits,
            misses: stats.misses,
            timeouts: stats.timeouts.total,
            timeouts_by_kind: { connect: stats.timeouts.connect, headers: stats.timeouts.headers, body: stats.timeouts.body, pool_wait: stats.timeouts.poolWait },
            connections_opened: stats.connectionsOpened,
            reuse_ratio: stats.hits + stats.misses === 0 ? null : stats.hits / (stats.hits + stats.misses),
            retries: stats.retries,
            client_aborts: stats.clientAborts,
            errors: stats.errors,
          },
          configuration: {
            upstream: upstream.options.origin + upstream.options.pathPrefix,
            max_connections: upstream.options.maxConnections,
            max_keepalive: upstream.options.maxKeepAlive,
            keepalive_expiry_ms: upstream.options.keepAliveTimeoutMs,
            chunk_size: upstream.options.replayBodyLimitBytes,
            http2: upstream.options.allowH2,
            connect_timeout_ms: upstream.options.connectTimeoutMs,
            headers_timeout_ms: upstream.options.headersTimeoutMs,
            body_timeout_ms: upstream.options.bodyTimeoutMs,
            pool_timeout_ms: upstream.options.poolTimeoutMs,
          },
          pool: stats.pool,
        },
        router_metrics: {
          total_requests: totalRequests,
          total_errors: totalErrors,
          error_rate: totalRequests === 0 ? 0 : totalErrors / totalRequests,
          active_requests: state.inFlightRequests,
          active_streams: state.inFlightStreams,
          routes,
          status_codes: Object.fromEntries([...statusCounts].map(([status, count]) => [String(status), count])),
          // Connections the front took, and those it handed to node:http (by reason); null when the front is off.
          front: frontStats === null ? null : { connections: frontStats.connections, handoffs: { ...frontStats.handOffs }, bypassed: frontStats.bypassed, plain_requests: frontStats.plainRequests },
        },
        usage_metrics: {
          by_model: Object.fromEntries([...usageByModel].map(([model, totals]) => [model, { ...totals }])),
        },
        monitor: monitor === null ? null : monitor.snapshot(),
      }
    },
  }
  app.decorate('apt', apt)

  // Bodies stay as bytes: a catch-all parser that consumes nothing.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  // Requests that reach Fastify's router for /v1 (app.inject, or a server built elsewhere) take the same handler.
  app.all('/v1/*', (request, reply) => {
    reply.hijack()
    proxy(request.raw, reply.raw, request.log)
  })
  const rootLog = app.log
  fastPath = (request, response) => {
    try {
      proxy(request, response, rootLog)
    } catch (error) {
      rootLog.error({ err: error }, 'proxy handler failed')
      sendError(response as ServerResponse, 'APT_SERVER_INTERNAL', 'Internal proxy error')
    }
  }

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async (_request, reply) => {
    if (state.draining) return reply.code(503).send({ status: 'draining' })
    return { status: 'ready' }
  })

  if (metricsEnabled) {
    // Compared in constant time, as client keys are (a string comparison stops at the first
    // byte that differs).
    const tokenCheck = metricsToken === undefined ? null : createKeyCheck([metricsToken])
    const authorize = (authorization: string | undefined): boolean =>
      tokenCheck === null || (authorization?.startsWith('Bearer ') === true && tokenCheck(authorization.slice(7)))
    app.get('/anthropic/metrics', (request, reply) => {
      if (!authorize(request.headers.authorization)) {
        reply.hijack()
        sendError(reply.raw, 'APT_SERVER_METRICS_UNAUTHORIZED', 'The metrics endpoints need Authorization: Bearer <token>')
        return
      }
      reply.send(apt.metricsSnapshot())
    })
    app.get('/metrics', async (request, reply) => {
      if (!authorize(request.headers.authorization)) {
        reply.hijack()
        sendError(reply.raw, 'APT_SERVER_METRICS_UNAUTHORIZED', 'The metrics endpoints need Authorization: Bearer <token>')
        return
      }
      const text = await metrics.text()
      reply.header('content-type', metrics.registry.contentType).send(text)
    })
  }

  // The live dashboard follows the metrics endpoints (same switch, same token).
  dashboardRoute(app, { enabled: metricsEnabled })

  app.setNotFoundHandler((request, reply) => {
    reply.hijack()
    sendError(reply.raw, 'APT_SERVER_NOT_FOUND', `Not found: ${request.method} ${request.url.split('?')[0] ?? ''}`)
  })
  app.setErrorHandler((error, _request, reply) => {
    reply.hijack()
    const status = (error as { statusCode?: number }).statusCode ?? 500
    const message = error instanceof Error ? error.message : String(error)
    if (status === 413) sendError(reply.raw, 'APT_SERVER_BODY_TOO_LARGE', message)
    else if (status >= 400 && status < 500) sendError(reply.raw, 'APT_SERVER_INVALID_REQUEST', message)
    else sendError(reply.raw, 'APT_SERVER_INTERNAL', 'Internal proxy error')
  })

  app.addHook('onClose', async () => {
    if (sweepTimer !== null) clearTimeout(sweepTimer)
    // Still flushed at process exit after this (lines logged after close, e.g. the shutdown summary).
    logDestination?.flushSync()
    metrics.close()
    if (ownsMonitor) monitor?.close()
    if (ownsUpstream) await upstream.close()
  })

  return app
}
