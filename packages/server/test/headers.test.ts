import { once } from 'node:events'
import { connect } from 'node:net'
import { gzipSync } from 'node:zlib'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type FakeUpstream, type RunningProxy, startFakeUpstream, startProxy } from './helpers.js'

const gzipped = gzipSync(Buffer.from('{"id":"msg_1","type":"message","content":[]}'))

function headerValues (rawHeaders: string[], name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === name) values.push(rawHeaders[i + 1] as string)
  return values
}

describe('headers', () => {
  let upstream: FakeUpstream
  let proxy: RunningProxy

  beforeAll(async () => {
    upstream = await startFakeUpstream((incoming, response) => {
      if (incoming.url === '/v1/redirect') {
        response.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere', 'request-id': 'req_redirect' })
        response.end()
        return
      }
      response.writeHead(429, [
        'content-type', 'application/json',
        'content-encoding', 'gzip',
        'content-length', String(gzipped.length),
        'request-id', 'req_011CSLsW7mFqvHHnzrKdKjAE',
        'retry-after', '7',
        'retry-after-ms', '7000',
        'x-should-retry', 'true',
        'anthropic-ratelimit-requests-limit', '1000',
        'anthropic-ratelimit-requests-remaining', '0',
        'anthropic-ratelimit-requests-reset', '2025-08-21T12:40:59Z',
        'anthropic-organization-id', '36562039-1ae4-48e6-ae28-1e517e3d2d12',
        'set-cookie', 'a=1',
        'set-cookie', 'b=2',
        'keep-alive', 'timeout=5',
      ])
      response.end(gzipped)
    })
    proxy = await startProxy(upstream.url)
  })
  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })

  test('request headers: every anthropic-beta line, version and unknown headers forwarded; hop-by-hop removed; host set', async () => {
    const response = await request(`${proxy.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: [
        'x-api-key', 'sk-ant-test',
        'anthropic-version', '2023-06-01',
        'anthropic-beta', 'prompt-caching-2024-07-31,files-api-2025-04-14',
        'anthropic-beta', 'oauth-2025-04-20',
        'x-stainless-retry-count', '0',
        'x-app', 'cli',
        'proxy-authorization', 'Basic Zm9vOmJhcg==',
        'te', 'trailers',
        'content-type', 'application/json',
      ],
      body: '{"model":"claude","max_tokens":1,"messages":[]}',
    })
    await response.body.dump()
    const seen = upstream.requests.at(-1)
    expect(seen?.url).toBe('/v1/messages?beta=true')
    const raw = seen?.rawHeaders ?? []
    expect(headerValues(raw, 'anthropic-beta')).toEqual(['prompt-caching-2024-07-31,files-api-2025-04-14', 'oauth-2025-04-20'])
    expect(headerValues(raw, 'anthropic-version')).toEqual(['2023-06-01'])
    expect(headerValues(raw, 'x-api-key')).toEqual(['sk-ant-test'])
    expect(headerValues(raw, 'x-app')).toEqual(['cli'])
    expect(headerValues(raw, 'x-stainless-retry-count')).toEqual(['0'])
    expect(headerValues(raw, 'host')).toEqual([new URL(upstream.url).host])
    expect(headerValues(raw, 'proxy-authorization')).toEqual([])
    expect(headerValues(raw, 'te')).toEqual([])
    expect(seen?.body.toString()).toBe('{"model":"claude","max_tokens":1,"messages":[]}')
  })

  test('headers named in Connection are dropped as hop-by-hop (raw socket client)', async () => {
    const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1')
    const body = '{}'
    socket.write(`POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nConnection: close, X-Hop-Secret\r\nX-Hop-Secret: must-not-leak\r\nX-Api-Key: k\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    let reply = ''
    for await (const chunk of socket) reply += String(chunk)
    expect(reply.startsWith('HTTP/1.1 429')).toBe(true)
    const raw = upstream.requests.at(-1)?.rawHeaders ?? []
    expect(headerValues(raw, 'x-hop-secret')).toEqual([])
    expect(headerValues(raw, 'x-api-key')).toEqual(['k'])
  })

  test('Expect: 100-continue (curl does it for large bodies) is answered by the proxy and not sent upstream', async () => {
    const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1')
    const body = JSON.stringify({ pad: 'x'.repeat(5000) })
    socket.write(`POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nX-Api-Key: k\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
    const [first] = await once(socket, 'data') as [Buffer]
    expect(first.toString()).toMatch(/^HTTP\/1\.1 100 Continue\r\n/)
    socket.write(body)
    let reply = ''
    for await (const chunk of socket) reply += String(chunk)
    expect(reply.startsWith('HTTP/1.1 429')).toBe(true)
    const seen = upstream.requests.at(-1)
    expect(headerValues(seen?.rawHeaders ?? [], 'expect')).toEqual([])
    expect(seen?.body.toString()).toBe(body)
  })

  test('no anthropic-version is injected when the client sent none (unless configured)', async () => {
    const response = await request(`${proxy.url}/v1/models`, { headers: { 'x-api-key': 'k' } })
    await response.body.dump()
    expect(headerValues(upstream.requests.at(-1)?.rawHeaders ?? [], 'anthropic-version')).toEqual([])

    const configured = await startProxy(upstream.url, { defaultHeaders: { 'anthropic-version': '2023-06-01' } })
    try {
      await (await request(`${configured.url}/v1/models`, { headers: { 'x-api-key': 'k' } })).body.dump()
      expect(headerValues(upstream.requests.at(-1)?.rawHeaders ?? [], 'anthropic-version')).toEqual(['2023-06-01'])
      await (await request(`${configured.url}/v1/models`, { headers: { 'x-api-key': 'k', 'anthropic-version': '2026-10-21' } })).body.dump()
      expect(headerValues(upstream.requests.at(-1)?.rawHeaders ?? [], 'anthropic-version')).toEqual(['2026-10-21'])
    } finally {
      await configured.close()
    }
  })

  test('response headers and compressed bytes come back unchanged', async () => {
    const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k', 'accept-encoding': 'gzip' }, body: '{}' })
    const body = Buffer.from(await response.body.arrayBuffer())
    expect(response.statusCode).toBe(429)
    expect(body.equals(gzipped)).toBe(true)
    const h = response.headers
    expect(h['content-encoding']).toBe('gzip')
    expect(h['content-length']).toBe(String(gzipped.length))
    expect(h['content-type']).toBe('application/json')
    expect(h['request-id']).toBe('req_011CSLsW7mFqvHHnzrKdKjAE')
    expect(h['retry-after']).toBe('7')
    expect(h['retry-after-ms']).toBe('7000')
    expect(h['x-should-retry']).toBe('true')
    expect(h['anthropic-ratelimit-requests-limit']).toBe('1000')
    expect(h['anthropic-ratelimit-requests-remaining']).toBe('0')
    expect(h['anthropic-ratelimit-requests-reset']).toBe('2025-08-21T12:40:59Z')
    expect(h['anthropic-organization-id']).toBe('36562039-1ae4-48e6-ae28-1e517e3d2d12')
    expect(h['set-cookie']).toEqual(['a=1', 'b=2'])
    // The upstream's hop-by-hop keep-alive hint is not relayed as-is; the proxy's own connection policy applies.
    expect(h['keep-alive']).not.toBe('timeout=5')
  })

  test('redirects are passed to the client, never followed', async () => {
    const before = upstream.requests.length
    const response = await request(`${proxy.url}/v1/redirect`, { headers: { 'x-api-key': 'k' } })
    await response.body.dump()
    expect(response.statusCode).toBe(307)
    expect(response.headers.location).toBe('http://127.0.0.1:1/elsewhere')
    expect(upstream.requests.length).toBe(before + 1)
  })
})
