import { describe, expect, test } from 'vitest'
import { AdapterError } from './errors.js'
import { resolveOptions } from './options.js'

describe('resolveOptions', () => {
  test('defaults: keep-alive expiry 30 s, connect 5 s, long header wait, idle body timeout, bounded pool wait', () => {
    expect(resolveOptions({ origin: 'https://api.anthropic.com' })).toEqual({
      origin: 'https://api.anthropic.com',
      pathPrefix: '',
      maxConnections: 1024,
      maxKeepAlive: 1024,
      keepAliveTimeoutMs: 30_000,
      connectTimeoutMs: 5_000,
      headersTimeoutMs: 600_000,
      bodyTimeoutMs: 300_000,
      poolTimeoutMs: 30_000,
      allowH2: false,
      engine: 'wire',
      replayBodyLimitBytes: 65_536,
      warmupConnections: 0,
      warmupPath: '/v1/models?limit=1',
      serverTiming: true,
      tlsCa: undefined,
      directWrite: true,
      wireConsume: true,
    })
  })

  test('engine: wire by default, undici on request and always for HTTP/2; anything else is refused', () => {
    expect(resolveOptions({ origin: 'http://a' }).engine).toBe('wire')
    expect(resolveOptions({ origin: 'http://a', engine: 'undici' }).engine).toBe('undici')
    expect(resolveOptions({ origin: 'https://a', engine: 'wire', allowH2: true }).engine).toBe('undici')
    expect(() => resolveOptions({ origin: 'http://a', engine: 'fast' as 'wire' })).toThrow(AdapterError)
  })

  test('a path prefix on the origin is kept', () => {
    expect(resolveOptions({ origin: 'http://gw.local:8080/anthropic/' }).pathPrefix).toBe('/anthropic')
  })

  test('bad values throw APT_ADAPTER_INVALID_OPTIONS', () => {
    for (const options of [{ origin: 'nope' }, { origin: 'ftp://x' }, { origin: 'http://x', maxConnections: 0 }, { origin: 'http://x', keepAliveTimeoutMs: 1.5 }]) {
      try {
        resolveOptions(options)
        expect.unreachable()
      } catch (error) {
        expect(error).toBeInstanceOf(AdapterError)
        expect((error as AdapterError).code).toBe('APT_ADAPTER_INVALID_OPTIONS')
      }
    }
  })
})
