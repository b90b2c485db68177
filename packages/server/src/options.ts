import type { UpstreamClient, UpstreamClientOptions } from '@apt/adapter'
import type { Monitor, MonitorOptions } from '@apt/monitor'
import type { DestinationStream, LoggerOptions } from 'pino'

export type AuthOptions =
  | { mode: 'passthrough' }
  | {
    mode: 'managed'
    /** The real Anthropic key the proxy sends upstream as `x-api-key`. */
    upstreamApiKey: string
    /** Keys clients present (as `x-api-key` or `Authorization: Bearer`). */
    proxyKeys: readonly string[]
  }

export interface BodyLimits {
  /** JSON endpoints (messages, count_tokens, ...): 32 MB, as the API. */
  jsonBytes: number
  /** `POST /v1/messages/batches`: 256 MB. */
  batchBytes: number
  /** `POST /v1/files`: 500 MB. */
  fileBytes: number
}

export interface ServerOptions {
  /** Upstream options, or an existing client (the server then does not own it). */
  upstream: UpstreamClientOptions | UpstreamClient
  auth?: AuthOptions
  /** Public base URL of this proxy (e.g. `https://llm-proxy.internal`): batch `results_url` values are rewritten to it. */
  publicBaseUrl?: string
  limits?: Partial<BodyLimits>
  /** pino options, `false` to disable logging. Default: level `info`. */
  logger?: LoggerOptions | false
  /** Where log lines go (default stdout). */
  logStream?: DestinationStream
  metrics?: {
    /** Serve `/metrics` and `/anthropic/metrics`. Default true. */
    enabled?: boolean
    /** When set, the metrics endpoints require `Authorization: Bearer <token>`. */
    token?: string
    /** Collect Node process metrics (prom-client defaults). Default true. */
    processMetrics?: boolean
  }
  /** Added upstream only when the client did not send one, e.g. `{ 'anthropic-version': '2023-06-01' }`. Default none. */
  defaultHeaders?: Readonly<Record<string, string>>
  /**
   * Serve plain HTTP/1.1 keep-alive `/v1/*` requests with apt's front (Node's llhttp reading
   * the client socket, responses written to it directly) instead of node:http's request and
   * response objects; everything else still goes through node:http. Default true.
   */
  front?: boolean
  /** Interval between `closeIdleConnections()` sweeps while draining, ms. Default 100. */
  drainSweepMs?: number
  /** Monitor options, an existing monitor (not closed by the server), or `false` to run without one. Default: a monitor with default windows and alert rules. */
  monitor?: MonitorOptions | Monitor | false
}

export const DEFAULT_LIMITS: Readonly<BodyLimits> = Object.freeze({
  jsonBytes: 32 * 1024 * 1024,
  batchBytes: 256 * 1024 * 1024,
  fileBytes: 500 * 1024 * 1024,
})
