import * as server from '@apt/server'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type FakeUpstream, startFakeUpstream, startProxy } from './helpers.js'

describe('the proxy\'s own endpoints, auth and rewriting', () => {
  let upstream: FakeUpstream
  beforeAll(async () => {
    upstream = await startFakeUpstream((incoming, response) => {
      if ((incoming.url ?? '').startsWith('/v1/messages/batches')) {
        response.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_batch' })
        response.end(JSON.stringify({
          id: 'msgbatch_1', type: 'message_batch', processing_status: 'ended',
          results_url: `${upstream.url}/v1/messages/batches/msgbatch_1/results`,
        }))
        return
      }
      response.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_ok' })
      response.end(JSON.stringify({ saw_key: incoming.headers['x-api-key'] ?? null, saw_authorization: incoming.headers.authorization ?? null }))
    })
  })
  afterAll(async () => { await upstream.close() })

  test('public API of @apt/server (sorted export names)', () => {
    expect(Object.keys(server).sort()).toEqual([
      'DEFAULT_LIMITS', 'ERROR_POLICY', 'REDACT_PATHS', 'ROUTE_NAMES', 'buildServer', 'classifyRoute', 'createResultsUrlRewriter', 'errorBody',
    ])
  })

  test('/health is live; /ready turns 503 and /v1 refuses new work while draining', async () => {
    const proxy = await startProxy(upstream.url)
    try {
      expect((await proxy.app.inject('/health')).json()).toEqual({ status: 'ok' })
      expect((await proxy.app.inject('/ready')).statusCode).toBe(200)
      proxy.app.apt.startDrain()
      const ready = await proxy.app.inject('/ready')
      expect(ready.statusCode).toBe(503)
      expect(ready.json()).toEqual({ status: 'draining' })
      const before = upstream.requests.length
      const refused = await proxy.app.inject({ method: 'POST', url: '/v1/messages', payload: '{}' })
      expect(refused.statusCode).toBe(503)
      expect(refused.headers['retry-after']).toBe('1')
      expect(refused.headers.connection).toBe('close')
      expect(refused.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } })
      expect(upstream.requests.length).toBe(before)
      expect((await proxy.app.inject('/anthropic/metrics')).json().adapter_metrics.status).toBe('draining')
    } finally {
      await proxy.close()
    }
  })

  test('managed auth: unknown keys get 401 without contacting the upstream; known keys are swapped for the upstream key', async () => {
    const proxy = await startProxy(upstream.url, { auth: { mode: 'managed', upstreamApiKey: 'sk-ant-upstream', proxyKeys: ['team-a', 'team-b'] } })
    try {
      const before = upstream.requests.length
      for (const headers of [{}, { 'x-api-key': 'wrong' }, { authorization: 'Bearer team-c' }, { 'x-api-key': 'team-a-but-longer' }]) {
        const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers, body: '{}' })
        expect(response.statusCode).toBe(401)
        expect(await response.body.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
      }
      expect(upstream.requests.length).toBe(before)
      const viaKey = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'team-b' }, body: '{}' })
      expect(await viaKey.body.json()).toEqual({ saw_key: 'sk-ant-upstream', saw_authorization: null })
      const viaBearer = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { authorization: 'Bearer team-a' }, body: '{}' })
      expect(await viaBearer.body.json()).toEqual({ saw_key: 'sk-ant-upstream', saw_authorization: null })
    } finally {
      await proxy.close()
    }
  })

  test('configured header values that could split an upstream request head are refused at build time, without echoing the key', () => {
    const origin = upstream.url
    expect(() => server.buildServer({ upstream: { origin }, logger: false, defaultHeaders: { 'anthropic-version': '2023-06-01\r\nx-evil: 1' } }))
      .toThrow(/defaultHeaders\.anthropic-version is not a valid HTTP header/)
    let message = ''
    try {
      server.buildServer({ upstream: { origin }, logger: false, auth: { mode: 'managed', upstreamApiKey: 'sk-ant-secret\n', proxyKeys: ['a'] } })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toMatch(/auth\.upstreamApiKey is not a valid HTTP header/)
    expect(message).not.toContain('sk-ant-secret')
  })

  test('pass-through auth: the client\'s credentials go upstream untouched', async () => {
    const proxy = await startProxy(upstream.url)
    try {
      const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'sk-client', authorization: 'Bearer tok' }, body: '{}' })
      expect(await response.body.json()).toEqual({ saw_key: 'sk-client', saw_authorization: 'Bearer tok' })
    } finally {
      await proxy.close()
    }
  })

  test('batch results_url is rewritten to the public base URL when one is configured', async () => {
    const plain = await startProxy(upstream.url)
    const rewriting = await startProxy(upstream.url, { publicBaseUrl: 'https://proxy.example.internal/' })
    try {
      const untouched = await request(`${plain.url}/v1/messages/batches/msgbatch_1`)
      expect((await untouched.body.json() as { results_url: string }).results_url).toBe(`${upstream.url}/v1/messages/batches/msgbatch_1/results`)
      const response = await request(`${rewriting.url}/v1/messages/batches/msgbatch_1`, { headers: { 'accept-encoding': 'gzip' } })
      const text = await response.body.text()
      expect(JSON.parse(text).results_url).toBe('https://proxy.example.internal/v1/messages/batches/msgbatch_1/results')
      expect(response.headers['content-length']).toBe(String(Buffer.byteLength(text)))
      // accept-encoding was dropped upstream so the JSON could be read
      expect(upstream.requests.at(-1)?.rawHeaders.map((h) => h.toLowerCase())).not.toContain('accept-encoding')
    } finally {
      await plain.close()
      await rewriting.close()
    }
  })

  test('/anthropic/metrics has the seed shape with real counts', async () => {
    const proxy = await startProxy(upstream.url)
    try {
      for (let i = 0; i < 5; i++) await (await request(`${proxy.url}/v1/messages`, { method: 'POST', body: '{}' })).body.dump()
      const snapshot = (await proxy.app.inject('/anthropic/metrics')).json()
      expect(Date.parse(snapshot.timestamp)).not.toBeNaN()
      expect(snapshot.adapter_metrics).toMatchObject({
        status: 'healthy',
        initialized: true,
        request_count: 5,
        connection_stats: { hits: 4, misses: 1, timeouts: 0 },
        configuration: { max_connections: 1024, max_keepalive: 1024, chunk_size: 65_536 },
      })
      expect(snapshot.router_metrics).toMatchObject({ total_requests: 5, active_requests: 0, routes: { messages: { requests: 5, errors: 0 } } })
    } finally {
      await proxy.close()
    }
  })

  test('metrics endpoints: protected by a token when configured, absent when disabled', async () => {
    const guarded = await startProxy(upstream.url, { metrics: { token: 's3cret', processMetrics: false } })
    const disabled = await startProxy(upstream.url, { metrics: { enabled: false } })
    try {
      expect((await guarded.app.inject('/metrics')).statusCode).toBe(401)
      expect((await guarded.app.inject('/anthropic/metrics')).json()).toMatchObject({ error: { type: 'authentication_error' } })
      // Wrong, longer, shorter, differently cased or unprefixed tokens are all refused.
      for (const authorization of ['Bearer s3creT', 'Bearer s3cret ', 'Bearer s3cre', 'bearer s3cret', 's3cret', 'Bearer', 'Basic s3cret']) {
        expect((await guarded.app.inject({ url: '/anthropic/metrics', headers: { authorization } })).statusCode).toBe(401)
      }
      expect((await guarded.app.inject({ url: '/anthropic/metrics', headers: { authorization: 'Bearer s3cret' } })).statusCode).toBe(200)
      const ok = await guarded.app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret' } })
      expect(ok.statusCode).toBe(200)
      expect(ok.body).toContain('# TYPE apt_http_requests_total counter')
      expect((await disabled.app.inject('/metrics')).statusCode).toBe(404)
    } finally {
      await guarded.close()
      await disabled.close()
    }
  })

  test('/metrics exposes request, duration, ttfb, in-flight and reuse series', async () => {
    const proxy = await startProxy(upstream.url, { metrics: { processMetrics: true } })
    try {
      for (let i = 0; i < 3; i++) await (await request(`${proxy.url}/v1/messages`, { method: 'POST', body: '{}' })).body.dump()
      const text = (await proxy.app.inject('/metrics')).body
      expect(text).toContain('apt_http_requests_total{route="messages",method="POST",status_class="2xx",model="none"} 3')
      expect(text).toContain('apt_http_request_duration_seconds_count{route="messages",kind="json"} 3')
      expect(text).toContain('apt_upstream_time_to_first_byte_seconds_count{route="messages"} 3')
      expect(text).toContain('apt_upstream_requests_total{socket="reused"} 2')
      expect(text).toContain('apt_upstream_requests_total{socket="new"} 1')
      expect(text).toContain('apt_inflight_streams 0')
      expect(text).toContain('process_cpu_seconds_total')
    } finally {
      await proxy.close()
    }
  })
})
