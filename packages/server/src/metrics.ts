import type { ConnectionStats } from '@apt/adapter'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { ROUTE_NAMES, type RouteName } from './routes-table.js'

/** What the server knows about a request once it has ended. */
export interface RequestRecord {
  route: RouteName
  method: string
  status: number
  durationMs: number
  /** Upstream time to first byte (response headers), or -1 when none arrived. */
  ttfbMs: number
  bytesOut: number
  isStream: boolean
  errorCode: string | undefined
}

const METHODS = new Set(['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'])
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

function statusClass (status: number): string {
  if (status < 200) return '1xx'
  if (status < 300) return '2xx'
  if (status < 400) return '3xx'
  if (status < 500) return '4xx'
  return '5xx'
}

export interface ServerMetrics {
  readonly registry: Registry
  observe (record: RequestRecord): void
  close (): void
}

/**
 * Prometheus metrics on the server's own registry. Label values come from
 * closed sets (route names, HTTP methods, status classes), so clients cannot
 * grow cardinality. Counter children are cached so a request costs a Map
 * lookup, not prom-client's label hashing.
 */
export function createServerMetrics (options: {
  processMetrics: boolean
  connectionStats: () => ConnectionStats
  gauges: () => { inFlightRequests: number, inFlightStreams: number, draining: boolean }
}): ServerMetrics {
  const registry = new Registry()
  if (options.processMetrics) collectDefaultMetrics({ register: registry })

  const requests = new Counter({
    name: 'apt_http_requests_total',
    help: 'Requests handled by the proxy, by route, method and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'apt_http_request_duration_seconds',
    help: 'Time from request received to response finished, by route and kind (json or stream).',
    labelNames: ['route', 'kind'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  const ttfb = new Histogram({
    name: 'apt_upstream_time_to_first_byte_seconds',
    help: 'Time from request received to upstream response headers, by route.',
    labelNames: ['route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  const bytes = new Counter({
    name: 'apt_http_response_bytes_total',
    help: 'Response body bytes sent to clients (as sent: compressed bytes count compressed).',
    labelNames: ['route'] as const,
    registers: [registry],
  })
  // Pre-create children for every label combination that can occur.
  const requestChildren = new Map<string, Counter.Internal>()
  const durationChildren = new Map<string, Histogram.Internal<'route' | 'kind'>>()
  const ttfbChildren = new Map<string, Histogram.Internal<'route'>>()
  const bytesChildren = new Map<string, Counter.Internal>()
  for (const route of ROUTE_NAMES) {
    ttfbChildren.set(route, ttfb.labels({ route }))
    bytesChildren.set(route, bytes.labels({ route }))
    for (const kind of ['json', 'stream']) durationChildren.set(route + kind, duration.labels({ route, kind }))
  }

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

  return {
    registry,
    observe (record) {
      const method = METHODS.has(record.method) ? record.method : 'OTHER'
      const cls = statusClass(record.status)
      const key = record.route + method + cls
      let child = requestChildren.get(key)
      if (child === undefined) {
        child = requests.labels({ route: record.route, method, status_class: cls })
        requestChildren.set(key, child)
      }
      child.inc()
      durationChildren.get(record.route + (record.isStream ? 'stream' : 'json'))?.observe(record.durationMs / 1000)
      if (record.ttfbMs >= 0) ttfbChildren.get(record.route)?.observe(record.ttfbMs / 1000)
      if (record.bytesOut > 0) bytesChildren.get(record.route)?.inc(record.bytesOut)
    },
    close () {
      registry.clear()
    },
  }
}
