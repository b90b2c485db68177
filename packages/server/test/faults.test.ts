import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createConnection, createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { type FakeUpstream, parseSse, type RunningProxy, readTimed, sleep, startFakeUpstream, startProxy } from './helpers.js'

const SSE_HEAD = { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_stream' }
const START = 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
const DELTA = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'

describe('faults', () => {
  let upstream: FakeUpstream
  let proxy: RunningProxy
  const served = new WeakMap<Socket, number>()
  let resetReused = 0
  let abortedUpstream = 0

  beforeAll(async () => {
    upstream = await startFakeUpstream((incoming, response) => {
      const socket = incoming.socket
      const count = served.get(socket) ?? 0
      served.set(socket, count + 1)
      if (count > 0 && resetReused > 0) {
        resetReused--
        socket.destroy() // a stale keep-alive socket: dies before any response byte
        return
      }
      const url = incoming.url ?? ''
      if (url.startsWith('/v1/messages/drop')) {
        response.writeHead(200, SSE_HEAD)
        response.write(START)
        response.write(DELTA)
        setTimeout(() => socket.destroy(), 20)
      } else if (url.startsWith('/v1/messages/slow-headers')) {
        setTimeout(() => { if (!response.destroyed) response.end('{}') }, 2_000)
      } else if (url.startsWith('/v1/messages/move-then-stall')) {
        // Moves for 1 s (beyond the 300 ms body timeout), then falls silent.
        response.writeHead(200, SSE_HEAD)
        response.write(START)
        let n = 0
        const timer = setInterval(() => {
          if (response.destroyed || ++n > 20) { clearInterval(timer); return }
          response.write(DELTA)
        }, 50)
        response.on('close', () => clearInterval(timer))
      } else if (url.startsWith('/v1/messages/stall')) {
        response.writeHead(200, SSE_HEAD)
        response.write(START)
        // then silence, longer than the body idle timeout
      } else if (url.startsWith('/v1/messages/long')) {
        response.writeHead(200, SSE_HEAD)
        let n = 0
        const timer = setInterval(() => {
          if (response.destroyed) return
          response.write(DELTA)
          if (++n === 200) { clearInterval(timer); response.end() }
        }, 10)
        response.on('close', () => {
          clearInterval(timer)
          if (n < 200) abortedUpstream++
        })
      } else if (url.startsWith('/v1/status/')) {
        const status = Number(url.split('/')[3])
        const body = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded', details: null }, request_id: 'req_err' })
        response.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_err', 'retry-after': '3' })
        response.end(body)
      } else {
        response.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_ok' })
        response.end('{"ok":true}')
      }
    })
    proxy = await startProxy(upstream.url, {
      upstream: { origin: upstream.url, headersTimeoutMs: 300, bodyTimeoutMs: 300, keepAliveTimeoutMs: 10_000 },
    })
  })
  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })
  afterEach(() => { resetReused = 0 })

  test.each([400, 401, 403, 404, 413, 429, 500, 504, 529])('upstream %i passes through with identical status, body and headers', async (status) => {
    const direct = await request(`${upstream.url}/v1/status/${status}`)
    const directBody = await direct.body.text()
    const proxied = await request(`${proxy.url}/v1/status/${status}`)
    expect(proxied.statusCode).toBe(status)
    expect(await proxied.body.text()).toBe(directBody)
    expect(proxied.headers['request-id']).toBe('req_err')
    expect(proxied.headers['retry-after']).toBe('3')
  })

  test('an upstream that drops mid-stream ends the client stream with an Anthropic event: error', async () => {
    const response = await fetch(`${proxy.url}/v1/messages/drop`, { method: 'POST', body: '{"stream":true}' })
    expect(response.status).toBe(200)
    const { text } = await readTimed(response)
    const events = parseSse(text)
    expect(events.map((e) => e.event)).toEqual(['message_start', 'content_block_delta', 'error'])
    const error = JSON.parse(events[2]?.data ?? '{}')
    expect(error).toMatchObject({ type: 'error', error: { type: 'api_error' }, request_id: 'req_stream' })
    expect(error.error.message).toMatch(/interrupted/)
  })

  test('a client that disconnects aborts the upstream request at once', async () => {
    const before = abortedUpstream
    const controller = new AbortController()
    const response = await fetch(`${proxy.url}/v1/messages/long`, { method: 'POST', body: '{"stream":true}', signal: controller.signal })
    const reader = (response.body as ReadableStream).getReader()
    await reader.read()
    controller.abort()
    for (let i = 0; i < 50 && abortedUpstream === before; i++) await sleep(10)
    expect(abortedUpstream).toBe(before + 1)
    await sleep(20)
    expect(proxy.app.apt.stats().clientAborts).toBeGreaterThanOrEqual(1)
  })

  test('headers timeout: 504 timeout_error in the Anthropic shape with a request id', async () => {
    const response = await request(`${proxy.url}/v1/messages/slow-headers`, { method: 'POST', body: '{}' })
    expect(response.statusCode).toBe(504)
    const body = await response.body.json() as { type: string, error: { type: string }, request_id: string }
    expect(body.type).toBe('error')
    expect(body.error.type).toBe('timeout_error')
    expect(body.request_id).toMatch(/^req_apt_/)
    expect(response.headers['request-id']).toBe(body.request_id)
    expect(proxy.app.apt.stats().timeouts.headers).toBeGreaterThanOrEqual(1)
  })

  test('body idle timeout mid-stream: the stream ends with event: error (timeout_error)', async () => {
    const response = await fetch(`${proxy.url}/v1/messages/stall`, { method: 'POST', body: '{"stream":true}' })
    const events = parseSse((await readTimed(response)).text)
    expect(events.map((e) => e.event)).toEqual(['message_start', 'error'])
    expect(JSON.parse(events[1]?.data ?? '{}').error.type).toBe('timeout_error')
    expect(proxy.app.apt.stats().timeouts.body).toBeGreaterThanOrEqual(1)
  })

  test('the body timeout counts from the last chunk: a stream that moves for longer is not cut, and is cut once it falls silent', async () => {
    const whole = await fetch(`${proxy.url}/v1/messages/long`, { method: 'POST', body: '{"stream":true}' })
    const longEvents = parseSse((await readTimed(whole)).text)
    expect(longEvents).toHaveLength(200)
    expect(longEvents.every((e) => e.event === 'content_block_delta')).toBe(true)

    const response = await fetch(`${proxy.url}/v1/messages/move-then-stall`, { method: 'POST', body: '{"stream":true}' })
    const { chunks, text } = await readTimed(response)
    const events = parseSse(text)
    expect(events.map((e) => e.event)).toEqual(['message_start', ...Array(20).fill('content_block_delta'), 'error'])
    expect(JSON.parse(events.at(-1)?.data ?? '{}').error.type).toBe('timeout_error')
    // Cut about one timeout (300 ms) after the last delta: not before it, and (wire engine) not a
    // whole extra period late. undici checks its timeouts on a coarse tick (measured ~900 ms here).
    const lastDelta = chunks.findLast((chunk) => chunk.text.includes('content_block_delta')) as { at: number }
    const cut = chunks.at(-1) as { at: number }
    expect(cut.at - lastDelta.at).toBeGreaterThanOrEqual(280)
    expect(cut.at - lastDelta.at).toBeLessThan(process.env.APT_TEST_ENGINE === 'undici' ? 2_000 : 560)
  })

  test('a stale pooled socket that fails before any response byte is replayed once on another connection', async () => {
    // Warm one keep-alive connection, then make the upstream kill the next request on a reused socket.
    await (await request(`${proxy.url}/v1/messages`, { method: 'POST', body: '{"a":1}' })).body.dump()
    const retriesBefore = proxy.app.apt.stats().retries
    resetReused = 1
    const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', body: '{"replay":true}' })
    expect(response.statusCode).toBe(200)
    expect(await response.body.text()).toBe('{"ok":true}')
    expect(proxy.app.apt.stats().retries).toBe(retriesBefore + 1)
    expect(upstream.requests.at(-1)?.body.toString()).toBe('{"replay":true}')
  })

  test('never replayed after a fresh connection fails: the client gets a 502 api_error', async () => {
    const tcp = createTcpServer((socket) => { socket.once('data', () => socket.destroy()) })
    tcp.listen(0, '127.0.0.1')
    await once(tcp, 'listening')
    const origin = `http://127.0.0.1:${(tcp.address() as AddressInfo).port}`
    const broken = await startProxy(origin)
    try {
      const response = await request(`${broken.url}/v1/messages`, { method: 'POST', body: '{}' })
      expect(response.statusCode).toBe(502)
      expect((await response.body.json() as { error: { type: string } }).error.type).toBe('api_error')
      expect(broken.app.apt.stats().retries).toBe(0)
    } finally {
      await broken.close()
      tcp.close()
    }
  })

  test('connect timeout: a TLS upstream that never answers the handshake gives 504 timeout_error', async () => {
    const silent: TcpServer = createTcpServer(() => { /* accept, never speak */ })
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const origin = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`
    const stuck = await startProxy(origin, { upstream: { origin, connectTimeoutMs: 200 } })
    try {
      const response = await request(`${stuck.url}/v1/messages`, { method: 'POST', body: '{}' })
      expect(response.statusCode).toBe(504)
      expect((await response.body.json() as { error: { type: string } }).error.type).toBe('timeout_error')
      expect(stuck.app.apt.stats().timeouts.connect).toBe(1)
    } finally {
      await stuck.close()
      silent.close()
    }
  })

  test('pool wait is bounded: with one busy connection a queued request gets 529 overloaded_error', async () => {
    const tight = await startProxy(upstream.url, { upstream: { origin: upstream.url, maxConnections: 1, poolTimeoutMs: 100 } })
    try {
      const first = fetch(`${tight.url}/v1/messages/long`, { method: 'POST', body: '{"stream":true}' })
      const held = await first
      const reader = (held.body as ReadableStream).getReader()
      await reader.read()
      const queued = await request(`${tight.url}/v1/messages`, { method: 'POST', body: '{}' })
      expect(queued.statusCode).toBe(529)
      expect(queued.headers['retry-after']).toBe('1')
      expect((await queued.body.json() as { error: { type: string } }).error.type).toBe('overloaded_error')
      expect(tight.app.apt.stats().timeouts.poolWait).toBe(1)
      await reader.cancel()
    } finally {
      await tight.close()
    }
  })

  test('oversize bodies get 413 request_too_large and never reach the upstream', async () => {
    const small = await startProxy(upstream.url, { limits: { jsonBytes: 1024 } })
    try {
      const before = upstream.requests.length
      const response = await request(`${small.url}/v1/messages`, { method: 'POST', body: 'x'.repeat(2048) })
      expect(response.statusCode).toBe(413)
      const body = await response.body.json() as { type: string, error: { type: string }, request_id: string }
      expect(body).toMatchObject({ type: 'error', error: { type: 'request_too_large' } })
      expect(body.request_id).toMatch(/^req_apt_/)
      // Chunked bodies (no content-length) are counted as they stream.
      const chunked = await request(`${small.url}/v1/messages`, {
        method: 'POST',
        body: (async function * () { for (let i = 0; i < 8; i++) yield Buffer.alloc(512, 'y') })(),
      })
      expect(chunked.statusCode).toBe(413)
      expect((await chunked.body.json() as { error: { type: string } }).error.type).toBe('request_too_large')
      expect(upstream.requests.length).toBe(before)
    } finally {
      await small.close()
    }
  })

  test('malformed JSON is not parsed by the proxy: the upstream decides, and its answer passes through', async () => {
    const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": oops' })
    expect(response.statusCode).toBe(200)
    await response.body.dump()
    expect(upstream.requests.at(-1)?.body.toString()).toBe('{"model": oops')
  })

  test('unknown paths get a 404 not_found_error in the Anthropic shape', async () => {
    for (const path of ['/', '/v2/messages', '/anthropic/nope']) {
      const response = await request(`${proxy.url}${path}`)
      expect(response.statusCode).toBe(404)
      const body = await response.body.json() as { type: string, error: { type: string }, request_id: string }
      expect(body).toMatchObject({ type: 'error', error: { type: 'not_found_error' } })
      expect(response.headers['request-id']).toBe(body.request_id)
    }
  })

  test('malformed HTTP gets an Anthropic-shaped 400 too', async () => {
    const socket = createConnection(Number(new URL(proxy.url).port), '127.0.0.1')
    socket.write('THIS IS NOT HTTP\r\n\r\n')
    let reply = ''
    for await (const chunk of socket) reply += String(chunk)
    expect(reply.startsWith('HTTP/1.1 400 Bad Request')).toBe(true)
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))
    expect(body).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } })
    expect(body.request_id).toMatch(/^req_apt_/)
  })

  test('secrets never reach the logs', async () => {
    const secret = 'sk-ant-api03-SECRET-never-log-me'
    const bearer = 'oauth-SECRET-token-never-log-me'
    await (await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': secret, authorization: `Bearer ${bearer}` }, body: '{}' })).body.dump()
    await (await request(`${proxy.url}/v1/status/401`, { headers: { 'x-api-key': secret } })).body.dump()
    await sleep(20)
    const text = proxy.logs.join('\n')
    expect(text).toContain('"route":"messages"')
    expect(text).toContain('"path":"/v1/messages"')
    expect(text).not.toContain('SECRET')
  })
})
