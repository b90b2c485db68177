import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { loadConfig, readEnvFile } from '../src/config.js'

describe('loadConfig', () => {
  test('defaults: the real Anthropic API, port 8080, pass-through auth, 32 MB JSON limit', () => {
    const result = loadConfig({})
    if (!result.ok) throw new Error(result.errors.join('\n'))
    const { config } = result
    expect(config.port).toBe(8080)
    expect(config.host).toBe('0.0.0.0')
    expect(config.logLevel).toBe('info')
    expect(config.profile).toBe('production')
    const upstream = config.server.upstream as { origin: string, maxConnections: number, keepAliveTimeoutMs: number }
    expect(upstream.origin).toBe('https://api.anthropic.com')
    expect(upstream.maxConnections).toBe(1024)
    expect(upstream.keepAliveTimeoutMs).toBe(30_000)
    expect(config.server.auth).toEqual({ mode: 'passthrough' })
    expect(config.server.limits?.jsonBytes).toBe(32 * 1024 * 1024)
    expect(Object.isFrozen(config)).toBe(true)
  })

  test('the contract variables and the seed settings map to options', () => {
    const result = loadConfig({
      ANTHROPIC_UPSTREAM_URL: 'http://127.0.0.1:9999/prefix',
      PORT: '9000',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'WARN',
      ANTHROPIC_MAX_CONNECTIONS: '64',
      ANTHROPIC_MAX_KEEPALIVE: '32',
      ANTHROPIC_KEEPALIVE_EXPIRY: '12.5',
      ANTHROPIC_CHUNK_SIZE: '8192',
      PRODUCTION_ENABLE_HTTP2: 'true',
      PRODUCTION_WARMUP_CONNECTIONS: '8',
    })
    if (!result.ok) throw new Error(result.errors.join('\n'))
    expect(result.config.port).toBe(9000)
    expect(result.config.host).toBe('127.0.0.1')
    expect(result.config.logLevel).toBe('warn')
    expect(result.config.warmupConnections).toBe(8)
    expect(result.config.server.upstream).toMatchObject({
      origin: 'http://127.0.0.1:9999/prefix',
      maxConnections: 64,
      maxKeepAlive: 32,
      keepAliveTimeoutMs: 12_500,
      replayBodyLimitBytes: 8192,
      allowH2: true,
      warmupConnections: 8,
    })
  })

  test('the upstream engine switches: wire engine, direct write and llhttp consuming the socket are on by default, each can be turned off', () => {
    const upstreamOf = (env: Record<string, string>): { engine: string, directWrite: boolean, wireConsume: boolean } => {
      const result = loadConfig(env)
      if (!result.ok) throw new Error(result.errors.join('\n'))
      return result.config.server.upstream as { engine: string, directWrite: boolean, wireConsume: boolean }
    }
    expect(upstreamOf({})).toMatchObject({ engine: 'wire', directWrite: true, wireConsume: true })
    expect(upstreamOf({ APT_UPSTREAM_ENGINE: 'undici', APT_DIRECT_WRITE: 'false', APT_WIRE_CONSUME: 'false' }))
      .toMatchObject({ engine: 'undici', directWrite: false, wireConsume: false })
    const bad = loadConfig({ APT_WIRE_CONSUME: 'maybe' })
    expect(bad.ok).toBe(false)
    if (!bad.ok) expect(bad.errors.join('\n')).toContain('APT_WIRE_CONSUME')
  })

  test('every problem is reported at once, clearly', () => {
    const result = loadConfig({
      ANTHROPIC_UPSTREAM_URL: 'ftp://nope',
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      ANTHROPIC_MAX_CONNECTIONS: '0',
      PRODUCTION_ENABLE_HTTP2: 'maybe',
      APT_AUTH_MODE: 'managed',
    })
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.errors).toEqual(expect.arrayContaining([
      "ANTHROPIC_UPSTREAM_URL must be an absolute http(s) URL, got 'ftp://nope'",
      "PORT must be an integer between 0 and 65535, got 'abc'",
      expect.stringContaining("LOG_LEVEL must be one of"),
      "ANTHROPIC_MAX_CONNECTIONS must be an integer between 1 and 65536, got '0'",
      "PRODUCTION_ENABLE_HTTP2 must be true or false, got 'maybe'",
      'ANTHROPIC_API_KEY is required when APT_AUTH_MODE=managed',
      expect.stringContaining('APT_PROXY_KEYS'),
    ]))
    expect(result.errors).toHaveLength(7)
  })

  test('header values that could split an upstream request head are refused, and the key is never echoed', () => {
    const result = loadConfig({
      APT_AUTH_MODE: 'managed',
      ANTHROPIC_API_KEY: 'sk-ant-secret\r\nx-injected: 1',
      APT_PROXY_KEYS: 'team',
      APT_DEFAULT_ANTHROPIC_VERSION: '2023-06-01\nx: y',
      APT_UPSTREAM_ENGINE: 'fast',
    })
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.errors).toEqual([
      "APT_UPSTREAM_ENGINE must be wire or undici, got 'fast'",
      'ANTHROPIC_API_KEY contains characters a header cannot carry (control characters such as CR or LF)',
      'APT_DEFAULT_ANTHROPIC_VERSION contains characters a header cannot carry, got "2023-06-01\\nx: y"',
    ])
    expect(result.errors.join('\n')).not.toContain('sk-ant-secret')
  })

  test('profiles set defaults that explicit variables override', () => {
    const dev = loadConfig({ APT_PROFILE: 'development' })
    const load = loadConfig({ APT_PROFILE: 'loadtest', LOG_LEVEL: 'error' })
    if (!dev.ok || !load.ok) throw new Error('profiles should be valid')
    expect(dev.config.logLevel).toBe('debug')
    expect(load.config.logLevel).toBe('error')
    expect((load.config.server.upstream as { maxConnections: number }).maxConnections).toBe(4096)
    expect(loadConfig({ APT_PROFILE: 'turbo' }).ok).toBe(false)
  })

  test('managed auth takes the upstream key and the proxy keys', () => {
    const result = loadConfig({ APT_AUTH_MODE: 'managed', ANTHROPIC_API_KEY: 'sk-ant-real', APT_PROXY_KEYS: 'team-a, team-b' })
    if (!result.ok) throw new Error(result.errors.join('\n'))
    expect(result.config.server.auth).toEqual({ mode: 'managed', upstreamApiKey: 'sk-ant-real', proxyKeys: ['team-a', 'team-b'] })
  })

  test('alert rules come from the environment; bad values are reported with the rest', () => {
    const result = loadConfig({ ALERT_P95_LATENCY_MS: '250', ALERT_ERROR_RATE: '10%' })
    if (!result.ok) throw new Error(result.errors.join('\n'))
    const rules = (result.config.server.monitor as { alertRules: { id: string, threshold: number }[] }).alertRules
    expect(rules.find((rule) => rule.id === 'p95-latency')?.threshold).toBe(250)
    expect(rules.find((rule) => rule.id === 'error-rate')?.threshold).toBe(0.1)
    const bad = loadConfig({ ALERT_ERROR_RATE: 'lots', PORT: 'x' })
    expect(bad.ok).toBe(false)
    if (!bad.ok) expect(bad.errors).toHaveLength(2)
  })

  test('APT_UPSTREAM_CA_FILE is read as trusted roots; a missing file is a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-ca-'))
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    const ok = loadConfig({ APT_UPSTREAM_CA_FILE: join(dir, 'ca.pem') })
    if (!ok.ok) throw new Error(ok.errors.join('\n'))
    expect(String((ok.config.server.upstream as { tlsCa: Buffer }).tlsCa)).toContain('BEGIN CERTIFICATE')
    const missing = loadConfig({ APT_UPSTREAM_CA_FILE: join(dir, 'nope.pem') })
    expect(missing.ok).toBe(false)
    if (!missing.ok) expect(missing.errors[0]).toMatch(/^APT_UPSTREAM_CA_FILE must name a readable PEM file/)
  })

  test('.env files are read; a missing file is no error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-env-'))
    const file = join(dir, '.env')
    writeFileSync(file, '# comment\nPORT=7000\nANTHROPIC_UPSTREAM_URL="http://127.0.0.1:1234"\n')
    expect(readEnvFile(file)).toEqual({ PORT: '7000', ANTHROPIC_UPSTREAM_URL: 'http://127.0.0.1:1234' })
    expect(readEnvFile(join(dir, 'missing.env'))).toEqual({})
  })
})
