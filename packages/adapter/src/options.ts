import { AdapterError } from './errors.js'

export interface UpstreamClientOptions {
  /** Upstream origin, e.g. `https://api.anthropic.com`. A path prefix is kept and prepended. */
  origin: string
  /** Most sockets open to the upstream at once (undici Pool `connections`); opened on demand. Each open SSE stream holds one. Default 1024. */
  maxConnections?: number
  /**
   * Idle connections the pool keeps warm. undici keeps every pooled socket alive until
   * `keepAliveTimeoutMs` passes; it has no separate idle cap. `0` disables keep-alive
   * (every request gets `connection: close`). Any other value is reported only. Default = maxConnections.
   */
  maxKeepAlive?: number
  /** Idle socket lifetime, ms (undici keepAliveTimeout and keepAliveMaxTimeout). Default 30 000. */
  keepAliveTimeoutMs?: number
  /** TCP + TLS connect timeout, ms. Default 5 000. */
  connectTimeoutMs?: number
  /** Time to the first response header byte, ms. `0` disables. Default 600 000 (10 min). */
  headersTimeoutMs?: number
  /** Longest silence between two body chunks, ms; never a deadline on the whole stream. `0` disables. Default 300 000. */
  bodyTimeoutMs?: number
  /** Longest wait for a free pooled connection, ms. `0` waits for ever. Default 30 000. */
  poolTimeoutMs?: number
  /** Negotiate HTTP/2 over TLS (ALPN). Default false. HTTP/2 always runs on the undici engine. */
  allowH2?: boolean
  /**
   * The HTTP/1.1 client: `wire` (default), apt's own keep-alive pool and response reader, or
   * `undici`'s Pool. `allowH2` selects undici whatever this says.
   */
  engine?: 'wire' | 'undici'
  /** Request bodies up to this many bytes (by content-length) are collected and sent as one buffer, so a stale-socket failure can replay them. Larger bodies stream. Default 65 536. */
  replayBodyLimitBytes?: number
  /** Connections opened by `warmUp()` when it is called without a count. Default 0. */
  warmupConnections?: number
  /** Path requested by `warmUp()` on each connection. Default `/v1/models?limit=1`. */
  warmupPath?: string
  /** Add a `server-timing: proxy;dur=<ms>` response header with the proxy's own overhead. Default true. */
  serverTiming?: boolean
  /** Extra trusted CA certificates (PEM) for the upstream's TLS, e.g. a private CA. Verification stays on. */
  tlsCa?: string | Buffer
  /**
   * Write response heads and bodies straight to the client socket of a keep-alive HTTP/1.1
   * response, instead of through ServerResponse (which still finishes the response). Default true.
   */
  directWrite?: boolean
  /**
   * Wire engine: every upstream socket reads into one shared buffer (the socket's `onread`),
   * instead of through its JavaScript stream ('data' events, a Buffer per read). Default true.
   */
  wireConsume?: boolean
}

export interface ResolvedUpstreamOptions {
  readonly origin: string
  readonly pathPrefix: string
  readonly maxConnections: number
  readonly maxKeepAlive: number
  readonly keepAliveTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  readonly poolTimeoutMs: number
  readonly allowH2: boolean
  readonly engine: 'wire' | 'undici'
  readonly replayBodyLimitBytes: number
  readonly warmupConnections: number
  readonly warmupPath: string
  readonly serverTiming: boolean
  readonly tlsCa: string | Buffer | undefined
  readonly directWrite: boolean
  readonly wireConsume: boolean
}

function integer (name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min) {
    throw new AdapterError('APT_ADAPTER_INVALID_OPTIONS', `${name} must be an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

export function resolveOptions (options: UpstreamClientOptions): ResolvedUpstreamOptions {
  let url: URL
  try {
    url = new URL(options.origin)
  } catch (cause) {
    throw new AdapterError('APT_ADAPTER_INVALID_OPTIONS', `origin must be an absolute http(s) URL, got '${options.origin}'`, { cause })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AdapterError('APT_ADAPTER_INVALID_OPTIONS', `origin must use http or https, got '${url.protocol}'`)
  }
  const maxConnections = integer('maxConnections', options.maxConnections, 1024, 1)
  if (options.engine !== undefined && options.engine !== 'wire' && options.engine !== 'undici') {
    throw new AdapterError('APT_ADAPTER_INVALID_OPTIONS', `engine must be 'wire' or 'undici', got '${String(options.engine)}'`)
  }
  return Object.freeze({
    origin: url.origin,
    pathPrefix: url.pathname.replace(/\/+$/, ''),
    maxConnections,
    maxKeepAlive: integer('maxKeepAlive', options.maxKeepAlive, maxConnections, 0),
    keepAliveTimeoutMs: integer('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 30_000, 1),
    connectTimeoutMs: integer('connectTimeoutMs', options.connectTimeoutMs, 5_000, 1),
    headersTimeoutMs: integer('headersTimeoutMs', options.headersTimeoutMs, 600_000, 0),
    bodyTimeoutMs: integer('bodyTimeoutMs', options.bodyTimeoutMs, 300_000, 0),
    poolTimeoutMs: integer('poolTimeoutMs', options.poolTimeoutMs, 30_000, 0),
    allowH2: options.allowH2 ?? false,
    engine: options.allowH2 === true ? 'undici' : options.engine ?? 'wire',
    replayBodyLimitBytes: integer('replayBodyLimitBytes', options.replayBodyLimitBytes, 65_536, 0),
    warmupConnections: integer('warmupConnections', options.warmupConnections, 0, 0),
    warmupPath: options.warmupPath ?? '/v1/models?limit=1',
    serverTiming: options.serverTiming ?? true,
    tlsCa: options.tlsCa,
    directWrite: options.directWrite ?? true,
    wireConsume: options.wireConsume ?? true,
  })
}
