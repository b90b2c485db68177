import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseEnv } from 'node:util'
import { parseAlertRules } from '@apt/monitor'
import type { ServerOptions } from '@apt/server'

/** A header value: tab, visible ASCII, space and obs-text; no CR, LF or other control character. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/**
 * The only place that reads the environment. Every variable is validated, all
 * problems are reported together, and each package gets its own frozen slice.
 */

export type Profile = 'production' | 'development' | 'loadtest'

export interface ProxyConfig {
  readonly profile: Profile
  readonly host: string
  readonly port: number
  readonly logLevel: string
  readonly shutdownTimeoutMs: number
  readonly warmupConnections: number
  /** Processes serving the port (node:cluster); 1 = no primary process. */
  readonly workers: number
  /**
   * Ceiling of V8's semi-spaces in MiB, held by the proxy at run time (new-space.ts);
   * 0 = V8's own sizing, also when NODE_OPTIONS already sets --max-semi-space-size.
   */
  readonly maxSemiSpaceMiB: number
  readonly server: Readonly<ServerOptions>
}

export type ConfigResult = { ok: true, config: ProxyConfig } | { ok: false, errors: string[] }

type Env = Record<string, string | undefined>

/** Per-profile defaults; an explicit variable always wins. */
const PROFILE_DEFAULTS: Record<Profile, Env> = {
  production: { LOG_LEVEL: 'info', ANTHROPIC_MAX_CONNECTIONS: '1024', PRODUCTION_WARMUP_CONNECTIONS: '4', SHUTDOWN_TIMEOUT_MS: '60000' },
  development: { LOG_LEVEL: 'debug', ANTHROPIC_MAX_CONNECTIONS: '64', PRODUCTION_WARMUP_CONNECTIONS: '0', SHUTDOWN_TIMEOUT_MS: '5000' },
  loadtest: { LOG_LEVEL: 'warn', ANTHROPIC_MAX_CONNECTIONS: '4096', PRODUCTION_WARMUP_CONNECTIONS: '0', SHUTDOWN_TIMEOUT_MS: '10000', APT_POOL_TIMEOUT_MS: '60000' },
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Read a `.env` file into a plain object; variables already in the environment win. */
export function readEnvFile (path: string): Env {
  try {
    return parseEnv(readFileSync(path, 'utf8')) as Env
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw error
  }
}

export function loadConfig (input: Env): ConfigResult {
  const errors: string[] = []
  const rawProfile = input.APT_PROFILE ?? 'production'
  let profile: Profile = 'production'
  if (rawProfile === 'production' || rawProfile === 'development' || rawProfile === 'loadtest') profile = rawProfile
  else errors.push(`APT_PROFILE must be one of production, development, loadtest, got '${rawProfile}'`)
  const env: Env = { ...PROFILE_DEFAULTS[profile], ...stripEmpty(input) }

  const integer = (name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = env[name]
    if (raw === undefined) return fallback
    const value = Number(raw.trim())
    if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      errors.push(`${name} must be an integer between ${min} and ${max}, got '${raw}'`)
      return fallback
    }
    return value
  }
  const seconds = (name: string, fallbackMs: number, min = 0): number => {
    const raw = env[name]
    if (raw === undefined) return fallbackMs
    const value = Number(raw)
    if (raw.trim() === '' || !Number.isFinite(value) || value < min) {
      errors.push(`${name} must be a number of seconds >= ${min}, got '${raw}'`)
      return fallbackMs
    }
    return Math.round(value * 1000)
  }
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = env[name]
    if (raw === undefined) return fallback
    const value = raw.trim().toLowerCase()
    if (['1', 'true', 'yes', 'on'].includes(value)) return true
    if (['0', 'false', 'no', 'off'].includes(value)) return false
    errors.push(`${name} must be true or false, got '${raw}'`)
    return fallback
  }
  const url = (name: string, fallback: string | undefined): string | undefined => {
    const raw = env[name] ?? fallback
    if (raw === undefined) return undefined
    try {
      const parsed = new URL(raw)
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol')
      return raw
    } catch {
      errors.push(`${name} must be an absolute http(s) URL, got '${raw}'`)
      return fallback
    }
  }

  const upstreamUrl = url('ANTHROPIC_UPSTREAM_URL', 'https://api.anthropic.com') as string
  const port = integer('PORT', 8080, 0, 65535)
  const host = env.HOST ?? '0.0.0.0'
  const logLevel = (env.LOG_LEVEL ?? 'info').toLowerCase()
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${env.LOG_LEVEL}'`)

  const maxConnections = integer('ANTHROPIC_MAX_CONNECTIONS', 1024, 1, 65_536)
  const maxKeepAlive = integer('ANTHROPIC_MAX_KEEPALIVE', maxConnections, 0, 65_536)
  if (maxKeepAlive > maxConnections) errors.push(`ANTHROPIC_MAX_KEEPALIVE (${maxKeepAlive}) must not exceed ANTHROPIC_MAX_CONNECTIONS (${maxConnections})`)
  const keepAliveMs = seconds('ANTHROPIC_KEEPALIVE_EXPIRY', 30_000, 0.001)
  const chunkSize = integer('ANTHROPIC_CHUNK_SIZE', 65_536, 0, 32 * 1024 * 1024)
  const allowH2 = boolean('PRODUCTION_ENABLE_HTTP2', false)
  const engine = env.APT_UPSTREAM_ENGINE ?? 'wire'
  if (engine !== 'wire' && engine !== 'undici') errors.push(`APT_UPSTREAM_ENGINE must be wire or undici, got '${engine}'`)
  const directWrite = boolean('APT_DIRECT_WRITE', true)
  const wireConsume = boolean('APT_WIRE_CONSUME', true)
  const front = boolean('APT_FRONT', true)
  const warmupConnections = integer('PRODUCTION_WARMUP_CONNECTIONS', 0, 0, 65_536)
  if (warmupConnections > maxConnections) errors.push(`PRODUCTION_WARMUP_CONNECTIONS (${warmupConnections}) must not exceed ANTHROPIC_MAX_CONNECTIONS (${maxConnections})`)
  const connectTimeoutMs = integer('APT_CONNECT_TIMEOUT_MS', 5_000, 1)
  const headersTimeoutMs = integer('APT_HEADERS_TIMEOUT_MS', 600_000, 0)
  const bodyTimeoutMs = integer('APT_BODY_TIMEOUT_MS', 300_000, 0)
  const poolTimeoutMs = integer('APT_POOL_TIMEOUT_MS', 30_000, 0)
  const shutdownTimeoutMs = integer('SHUTDOWN_TIMEOUT_MS', 60_000, 0)
  const workers = env.APT_WORKERS?.trim().toLowerCase() === 'auto' ? availableParallelism() : integer('APT_WORKERS', 1, 1, 256)
  const semiSpace = integer('APT_MAX_SEMI_SPACE_MB', 4, 0, 1024)
  const maxSemiSpaceMiB = hasSemiSpaceFlag(input.NODE_OPTIONS) ? 0 : semiSpace

  const authMode = env.APT_AUTH_MODE ?? 'passthrough'
  let auth: ServerOptions['auth'] = { mode: 'passthrough' }
  if (authMode === 'managed') {
    const upstreamApiKey = env.ANTHROPIC_API_KEY
    const proxyKeys = (env.APT_PROXY_KEYS ?? '').split(',').map((key) => key.trim()).filter(Boolean)
    if (upstreamApiKey === undefined) errors.push('ANTHROPIC_API_KEY is required when APT_AUTH_MODE=managed')
    else if (!HEADER_VALUE.test(upstreamApiKey)) errors.push('ANTHROPIC_API_KEY contains characters a header cannot carry (control characters such as CR or LF)')
    if (proxyKeys.length === 0) errors.push('APT_PROXY_KEYS (comma-separated client keys) is required when APT_AUTH_MODE=managed')
    auth = { mode: 'managed', upstreamApiKey: upstreamApiKey ?? '', proxyKeys }
  } else if (authMode !== 'passthrough') {
    errors.push(`APT_AUTH_MODE must be passthrough or managed, got '${authMode}'`)
  }

  const publicBaseUrl = url('APT_PUBLIC_BASE_URL', undefined)
  const jsonBytes = integer('APT_MAX_REQUEST_BYTES', 32 * 1024 * 1024, 1)
  const batchBytes = integer('APT_MAX_BATCH_BYTES', 256 * 1024 * 1024, 1)
  const fileBytes = integer('APT_MAX_FILE_BYTES', 500 * 1024 * 1024, 1)
  const metricsEnabled = boolean('ENABLE_METRICS_ENDPOINT', true)
  const metricsToken = env.METRICS_TOKEN
  const defaultVersion = env.APT_DEFAULT_ANTHROPIC_VERSION
  if (defaultVersion !== undefined && !HEADER_VALUE.test(defaultVersion)) errors.push(`APT_DEFAULT_ANTHROPIC_VERSION contains characters a header cannot carry, got ${JSON.stringify(defaultVersion)}`)
  let tlsCa: Buffer | undefined
  if (env.APT_UPSTREAM_CA_FILE !== undefined) {
    try {
      tlsCa = readFileSync(env.APT_UPSTREAM_CA_FILE)
    } catch (error) {
      errors.push(`APT_UPSTREAM_CA_FILE must name a readable PEM file, got '${env.APT_UPSTREAM_CA_FILE}' (${(error as Error).message})`)
    }
  }
  // ALERT_P95_LATENCY_MS, ALERT_P99_LATENCY_MS, ALERT_ERROR_RATE, ALERT_MEMORY_GROWTH_MB, ALERT_MIN_RPS, ALERT_HOLD_MS
  const alerts = parseAlertRules(env)
  errors.push(...alerts.errors)

  if (errors.length > 0) return { ok: false, errors }

  const server: ServerOptions = {
    upstream: {
      origin: upstreamUrl,
      maxConnections,
      maxKeepAlive,
      keepAliveTimeoutMs: keepAliveMs,
      connectTimeoutMs,
      headersTimeoutMs,
      bodyTimeoutMs,
      poolTimeoutMs,
      allowH2,
      engine: engine as 'wire' | 'undici',
      directWrite,
      wireConsume,
      replayBodyLimitBytes: chunkSize,
      warmupConnections,
      ...(tlsCa === undefined ? {} : { tlsCa }),
    },
    auth,
    front,
    limits: { jsonBytes, batchBytes, fileBytes },
    logger: { level: logLevel },
    metrics: metricsToken === undefined ? { enabled: metricsEnabled } : { enabled: metricsEnabled, token: metricsToken },
    monitor: { alertRules: alerts.rules },
    ...(publicBaseUrl === undefined ? {} : { publicBaseUrl }),
    ...(defaultVersion === undefined ? {} : { defaultHeaders: { 'anthropic-version': defaultVersion } }),
  }
  return {
    ok: true,
    config: Object.freeze({ profile, host, port, logLevel, shutdownTimeoutMs, warmupConnections, workers, maxSemiSpaceMiB, server: Object.freeze(server) }),
  }
}

/** True when Node was started with its own `--max-semi-space-size` (command line or NODE_OPTIONS). */
export function hasSemiSpaceFlag (args: string | readonly string[] | undefined): boolean {
  if (args === undefined) return false
  const list = typeof args === 'string' ? args.split(/\s+/) : args
  return list.some((arg) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(arg))
}

function stripEmpty (env: Env): Env {
  const out: Env = {}
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') out[key] = value
  return out
}
