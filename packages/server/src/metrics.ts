import type { ConnectionStats } from '@apt/adapter'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { IndexedHistogram, KeyedCounter, KeyedHistogram } from './fast-metrics.js'
import { type FrontStats, HAND_OFF_REASONS } from './front.js'
import { boundedLabel, createBoundedLabeler, createModelLabeler, ERROR_TYPES, STOP_REASONS } from './model-label.js'
import { ROUTE_NAMES, type RouteName } from './routes-table.js'
import type { UsageFacts } from './usage-tap.js'

/** What the server knows about a request once it has ended. */
export interface RequestRecord {
  route: RouteName
  /** The request target as received (path and query); logged, never a metric label. */
  path: string
  method: string
  status: number
  durationMs: number
  /** Upstream time to first byte (response headers), or -1 when none arrived. */
  ttfbMs: number
  bytesOut: number
  isStream: boolean
  errorCode: string | undefined
  /** Time the proxy itself added (see Exchange.overheadMs), or -1. */
  overheadMs: number
  /** What the usage tap read (messages routes, 200 responses only). */
  usage: UsageFacts | undefined
  /** Streams: request received to first content_block_delta (ms), or -1. */
  ttftMs: number
}

/** Method labels by index; anything else is OTHER (the last). */
const METHOD_LABELS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'OTHER'] as const
const METHOD_OTHER = METHOD_LABELS.length - 1
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
/** Token types of `apt_tokens_total`, by index. */
const TOKEN_TYPES = ['input', 'output', 'cache_creation', 'cache_read'] as const
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
/** Proxy overhead is tens to hundreds of microseconds: buckets from 25 µs to 100 ms. */
const OVERHEAD_BUCKETS = [0.000025, 0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.025, 0.05, 0.1]
const TOKENS_PER_SECOND_BUCKETS = [1, 5, 10, 20, 40, 80, 160, 320, 640, 1280]

function methodIndex (method: string): number {
  switch (method) {
    case 'GET': return 0
    case 'POST': return 1
    case 'DELETE': return 2
    case 'PUT': return 3
    case 'PATCH': return 4
    case 'HEAD': return 5
    case 'OPTIONS': return 6
    default: return METHOD_OTHER
  }
}

function statusClassIndex (status: number): number {
  if (status < 200) return 0
  if (status < 300) return 1
  if (status < 400) return 2
  if (status < 500) return 3
  return 4
}

export interface ServerMetrics {
  readonly registry: Registry
  observe (record: RequestRecord): void
  /**
   * What `registry.metrics()` returns, byte for byte, with the proxy's own hot-path metrics
   * written by themselves (their label text is built once per series): prom-client builds each
   * line's labels anew, a `WeakMap` entry per line included, which made a scrape about 3 ms of
   * the event loop's time with a few hundred series.
   */
  text (): Promise<string>
  close (): void
}

/** A metric that writes its own text exposition (the fast metrics). */
function ownText (metric: unknown): (() => string) | null {
  const promText = (metric as { promText?: unknown }).promText
  return typeof promText === 'function' ? promText as () => string : null
}

async function registryText (registry: Registry): Promise<string> {
  // Default labels (or OpenMetrics) change every line: prom-client writes those itself.
  const defaults = (registry as unknown as { _defaultLabels?: object })._defaultLabels
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE || (defaults !== undefined && Object.keys(defaults).length > 0)) return registry.metrics()
  const parts: string[] = []
  for (const metric of registry.getMetricsAsArray()) {
    const own = ownText(metric)
    parts.push(own === null ? await registry.getSingleMetricAsString(metric.name) : own.call(metric))
  }
  return `${parts.join('\n\n')}\n`
}

/**
 * Prometheus metrics on the server's own registry. Label values come from
 * closed sets (route names, HTTP methods, status classes), so clients cannot
 * grow cardinality. Counter children are cached so a request costs a Map
 * lookup, not prom-client's label hashing.
 */
export function createServerMetrics (options: {
  processMetrics: boolean
  /**
   * prom-client's event-loop lag sampling resolution (ms; its default is 10). Give the monitor's
   * own resolution, and create both in the same turn of the loop: their timers then fire
   * together, one wake-up of an idle process for both instead of two or three.
   */
  eventLoopResolutionMs?: number
  connectionStats: () => ConnectionStats
  gauges: () => { inFlightRequests: number, inFlightStreams: number, draining: boolean }
  /** Alert rules and whether each is firing. */
  alerts?: () => { id: string, firing: boolean }[]
  /** The front's counters, when the front is on. */
  front?: () => FrontStats | null
}): ServerMetrics {
  const registry = new Registry()
  if (options.processMetrics) {
    collectDefaultMetrics({ register: registry, ...(options.eventLoopResolutionMs === undefined ? {} : { eventLoopMonitoringPrecision: options.eventLoopResolutionMs }) })
    // prom-client also names three gauges "_total", which Prometheus reserves for counters
    // (promtool rejects them); the same facts stay available per type in nodejs_active_resources.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name)
    }
  }

  // Per-stream series by model: keyed fast paths (prom-client's labelled observe was ~7 µs a stream).
  const ttft = new KeyedHistogram({
    name: 'apt_time_to_first_token_seconds',
    help: 'Streams: request received to the first content_block_delta, by model.',
    buckets: DURATION_BUCKETS,
  })
  const outputRate = new KeyedHistogram({
    name: 'apt_stream_output_tokens_per_second',
    help: 'Streams: output tokens divided by the time from first token to the end of the stream.',
    buckets: TOKENS_PER_SECOND_BUCKETS,
  })
  for (const metric of [ttft, outputRate]) registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
  const streamErrors = new Counter({
    name: 'apt_stream_errors_total',
    help: 'Mid-stream event: error frames sent by the upstream, by error type.',
    labelNames: ['type'] as const,
    registers: [registry],
  })
  const modelLabel = createModelLabeler()
  const stopReasonLabel = createBoundedLabeler(STOP_REASONS)
  // A small number per model label (the labeler bounds them): with the route, method and status
  // class indexes it makes each request's series keys as numbers, where strings concatenated per
  // request were flattened and hashed at every lookup.
  const modelIds = new Map<string, number>()
  function modelId (label: string): number {
    let id = modelIds.get(label)
    if (id === undefined) {
      id = modelIds.size
      modelIds.set(label, id)
    }
    return id
  }
  // Hot-path series: chosen by index (route, kind) or by a key built once per request.
  const routeSeries = ROUTE_NAMES.map((route) => ({ route }))
  const routeIndex = new Map<RouteName, number>(ROUTE_NAMES.map((route, index) => [route, index]))
  const requests = new KeyedCounter({
    name: 'apt_http_requests_total',
    help: 'Requests handled by the proxy, by route, method, status class and model (bounded; "none" when no model was seen).',
  })
  const overhead = new IndexedHistogram({
    name: 'apt_proxy_overhead_seconds',
    help: 'Time the proxy itself added: request received to upstream request sent, plus upstream headers received to client headers sent.',
    series: routeSeries,
    buckets: OVERHEAD_BUCKETS,
  })
  const duration = new IndexedHistogram({
    name: 'apt_http_request_duration_seconds',
    help: 'Time from request received to response finished, by route and kind (json or stream).',
    series: ROUTE_NAMES.flatMap((route) => [{ route, kind: 'json' }, { route, kind: 'stream' }]),
    buckets: DURATION_BUCKETS,
  })
  const ttfb = new IndexedHistogram({
    name: 'apt_upstream_time_to_first_byte_seconds',
    help: 'Time from request received to upstream response headers, by route.',
    series: routeSeries,
    buckets: DURATION_BUCKETS,
  })
  const bytes = new KeyedCounter({
    name: 'apt_http_response_bytes_total',
    help: 'Response body bytes sent to clients (as sent: compressed bytes count compressed).',
  })
  const tokens = new KeyedCounter({ name: 'apt_tokens_total', help: 'Tokens reported by the API in responses, by type and model.' })
  const stopReasons = new KeyedCounter({ name: 'apt_stop_reasons_total', help: 'Responses by stop_reason.' })
  for (const metric of [requests, overhead, duration, ttfb, bytes, tokens, stopReasons]) registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])

  const stats = options.connectionStats
  new Gauge({
    name: 'apt_inflight_requests',
    help: 'Requests currently being proxied.',
    registers: [registry],
    collect () { this.set(options.gauges().inFlightRequests) },
  })
  new Gauge({
    name: 'apt_inflight_streams',
    help: 'SSE streams currently open.',
    registers: [registry],
    collect () { this.set(options.gauges().inFlightStreams) },
  })
  new Gauge({
    name: 'apt_draining',
    help: '1 while the proxy is shutting down.',
    registers: [registry],
    collect () { this.set(options.gauges().draining ? 1 : 0) },
  })
  new Counter({
    name: 'apt_upstream_requests_total',
    help: 'Upstream requests by socket: reused keep-alive socket or a new connection.',
    labelNames: ['socket'] as const,
    registers: [registry],
    collect () {
      const s = stats()
      this.reset()
      this.inc({ socket: 'reused' }, s.hits)
      this.inc({ socket: 'new' }, s.misses)
    },
  })
  new Counter({
    name: 'apt_upstream_connections_opened_total',
    help: 'TCP/TLS connections opened to the upstream.',
    registers: [registry],
    collect () { this.reset(); this.inc(stats().connectionsOpened) },
  })
  new Counter({
    name: 'apt_upstream_timeouts_total',
    help: 'Upstream timeouts by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect () {
      const t = stats().timeouts
      this.reset()
      this.inc({ kind: 'connect' }, t.connect)
      this.inc({ kind: 'headers' }, t.headers)
      this.inc({ kind: 'body' }, t.body)
      this.inc({ kind: 'pool_wait' }, t.poolWait)
    },
  })
  new Counter({
    name: 'apt_upstream_retries_total',
    help: 'Requests replayed once after a stale keep-alive socket failed before any response byte.',
    registers: [registry],
    collect () { this.reset(); this.inc(stats().retries) },
  })
  new Counter({
    name: 'apt_client_aborts_total',
    help: 'Requests whose client disconnected before the response finished (upstream aborted at once).',
    registers: [registry],
    collect () { this.reset(); this.inc(stats().clientAborts) },
  })
  const front = options.front
  if (front !== undefined) {
    new Counter({
      name: 'apt_front_connections_total',
      help: 'Client connections taken by the front (plain keep-alive /v1/* served without node:http objects).',
      registers: [registry],
      collect () {
        this.reset()
        this.inc(front()?.connections ?? 0)
      },
    })
    new Counter({
      name: 'apt_front_plain_requests_total',
      help: 'Requests the front read without llhttp: a read holding exactly one plain request (POST or GET /v1/*, HTTP/1.1, a body of its declared length).',
      registers: [registry],
      collect () {
        this.reset()
        this.inc(front()?.plainRequests ?? 0)
      },
    })
    new Counter({
      name: 'apt_front_handoffs_total',
      help: 'Front connections handed to node:http, by what their first such request had: another route, HTTP/1.0, Connection: close, Expect, Upgrade.',
      labelNames: ['reason'] as const,
      registers: [registry],
      collect () {
        const stats = front()
        this.reset()
        for (const reason of HAND_OFF_REASONS) this.inc({ reason }, stats?.handOffs[reason] ?? 0)
      },
    })
  }
  new Gauge({
    name: 'apt_upstream_pool_connections',
    help: 'Upstream pool sockets by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect () {
      const pool = stats().pool
      this.set({ state: 'connected' }, pool.connected)
      this.set({ state: 'free' }, pool.free)
      this.set({ state: 'running' }, pool.running)
      this.set({ state: 'pending' }, pool.pending)
    },
  })

  if (options.alerts !== undefined) {
    const alerts = options.alerts
    new Gauge({
      name: 'apt_alert_firing',
      help: '1 while the monitor alert rule is firing, else 0.',
      labelNames: ['rule'] as const,
      registers: [registry],
      collect () {
        for (const alert of alerts()) this.set({ rule: alert.id }, alert.firing ? 1 : 0)
      },
    })
  }

  function countTokens (model: string, id: number, type: number, amount: number): void {
    if (amount > 0) tokens.inc(id * TOKEN_TYPES.length + type, () => ({ type: TOKEN_TYPES[type] as string, model }), amount)
  }

  function observeUsage (record: RequestRecord, usage: UsageFacts, model: string, id: number): void {
    const counts = usage.usage
    if (counts !== undefined) {
      countTokens(model, id, 0, counts.inputTokens)
      countTokens(model, id, 1, counts.outputTokens)
      countTokens(model, id, 2, counts.cacheCreationInputTokens)
      countTokens(model, id, 3, counts.cacheReadInputTokens)
    }
    if (usage.firstTokenAt > 0 && record.ttftMs >= 0) {
      const labels = (): { model: string } => ({ model })
      ttft.observe(model, labels, record.ttftMs / 1000)
      const generatingMs = record.durationMs - record.ttftMs
      if (counts !== undefined && counts.outputTokens > 0 && generatingMs > 0) outputRate.observe(model, labels, counts.outputTokens / (generatingMs / 1000))
    }
    if (usage.stopReason !== undefined) {
      const reason = stopReasonLabel(usage.stopReason)
      stopReasons.inc(reason, () => ({ reason }))
    }
    if (usage.streamErrorType !== undefined) streamErrors.inc({ type: boundedLabel(usage.streamErrorType, ERROR_TYPES) })
  }

  return {
    registry,
    text: () => registryText(registry),
    observe (record) {
      const method = methodIndex(record.method)
      const cls = statusClassIndex(record.status)
      const usage = record.usage
      const model = usage === undefined ? 'none' : modelLabel(usage.model)
      const id = modelId(model)
      const route = routeIndex.get(record.route) as number
      const key = ((id * ROUTE_NAMES.length + route) * METHOD_LABELS.length + method) * STATUS_CLASSES.length + cls
      requests.inc(key, () => ({ route: record.route, method: METHOD_LABELS[method] as string, status_class: STATUS_CLASSES[cls] as string, model }))
      if (record.overheadMs >= 0) overhead.observe(route, record.overheadMs / 1000)
      if (usage !== undefined) observeUsage(record, usage, model, id)
      duration.observe(route * 2 + (record.isStream ? 1 : 0), record.durationMs / 1000)
      if (record.ttfbMs >= 0) ttfb.observe(route, record.ttfbMs / 1000)
      if (record.bytesOut > 0) bytes.inc(record.route, () => ({ route: record.route }), record.bytesOut)
    },
    close () {
      registry.clear()
    },
  }
}
