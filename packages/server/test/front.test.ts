import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import type { ServerOptions } from '@apt/server'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { type FakeUpstream, type RunningProxy, sleep, startFakeUpstream, startProxy, writePaced } from './helpers.js'
import { header, post, RawReader, type RawResponse, REQUEST_HEADERS } from './raw-http.js'

/**
 * The front (src/front.ts) against real components: a fake upstream on a real port, the real
 * proxy, and raw `node:net` clients, so the exact bytes on the wire are checked. Plain
 * keep-alive `/v1/*` requests are the front's own; everything else (the proxy's own routes,
 * HTTP/1.0, `Connection: close`, `Expect`) is handed to node:http for the rest of the connection.
 */

const EVENTS = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\u00e9llo \u2713"}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" again"}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
const JSON_BODY = '{"id":"msg_2","type":"message","content":[{"type":"text","text":"caf\u00e9"}],"usage":{"input_tokens":1,"output_tokens":2}}'

/** What the official SDK needs to build a whole message from a stream. */
const SDK_MESSAGE = {
  id: 'msg_sdk', type: 'message', role: 'assistant', model: 'claude-test', content: [{ type: 'text', text: 'caf\u00e9 \u2713' }],
  stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 3 },
}
const SDK_EVENTS = [
  { type: 'message_start', message: { ...SDK_MESSAGE, content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' w\u00f6rld \u2713' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } },
  { type: 'message_stop' },
].map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`)

/** Bytes that are not text and hold CRLFs, a chunk terminator and a request line. */
function pattern (length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed + (i >> 9)) & 0xff
  Buffer.from('\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n').copy(bytes, Math.floor(length / 2))
  return bytes
}

/** The Anthropic error envelope of a proxy-generated reply. */
function errorOf (response: RawResponse): { type: string, error: { type: string, message: string }, request_id: string } {
  expect(header(response, 'content-type')).toBe('application/json')
  const parsed = JSON.parse(response.body.toString('utf8')) as { type: string, error: { type: string, message: string }, request_id: string }
  expect(parsed.type).toBe('error')
  expect(typeof parsed.error.message).toBe('string')
  expect(parsed.request_id).toMatch(/^req_apt_/)
  return parsed
}

const HEALTH = 'GET /health HTTP/1.1\r\nhost: proxy\r\n\r\n'

/** Rejects when `promise` has not settled within `ms` (a liveness bound, not a speed claim). */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not happen within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function writeAndWait (socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => error ? reject(error) : resolve()))
}

/** An upstream exchange the test holds open and watches. */
interface Held {
  url: string
  response: ServerResponse
  /** Resolves at the upstream response's 'close': true when it closed before it ended (aborted). */
  closedBeforeEnd: Promise<boolean>
  /** Let a `/gate` stream send the rest of its events. */
  release (): void
}

interface Client { socket: Socket, reader: RawReader, closed: Promise<void> }

describe('the front: the client side of /v1/* on a real connection', () => {
  let upstream: FakeUpstream
  let held: Held[]
  let heldWaiters: ((exchange: Held) => void)[]
  /** Every held exchange, for clean-up. */
  const allHeld: Held[] = []
  const proxies: RunningProxy[] = []
  const sockets: Socket[] = []

  /** The next exchange that a holding route (`/gate`, `/silent`, `/pending`, `/ticker`) received. */
  function nextHeld (): Promise<Held> {
    const ready = held.shift()
    if (ready !== undefined) return Promise.resolve(ready)
    return new Promise((resolve) => heldWaiters.push(resolve))
  }

  beforeEach(async () => {
    held = []
    heldWaiters = []
    upstream = await startFakeUpstream((request, response, body) => {
      const url = request.url as string
      const sse = (): void => {
        response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_sse' })
      }
      if (url === '/v1/messages/stream') {
        sse()
        writePaced(response, EVENTS, 10)
      } else if (['/v1/messages/gate', '/v1/messages/silent', '/v1/messages/pending', '/v1/messages/ticker'].includes(url)) {
        let release = (): void => {}
        let ticker: NodeJS.Timeout | null = null
        if (url === '/v1/messages/gate') {
          sse()
          response.write(EVENTS[0])
          release = () => {
            for (const event of EVENTS.slice(1)) response.write(event)
            response.end()
          }
        } else if (url === '/v1/messages/silent') {
          // The first event, then nothing (a long pause in generation).
          sse()
          response.write(EVENTS[0])
        } else if (url === '/v1/messages/ticker') {
          sse()
          response.write(EVENTS[0])
          let count = 0
          ticker = setInterval(() => {
            response.write(EVENTS[1])
            if (++count === 200) {
              clearInterval(ticker as NodeJS.Timeout)
              response.end()
            }
          }, 10)
        }
        // `/pending`: no answer at all (a long non-streaming generation).
        const closedBeforeEnd = new Promise<boolean>((resolve) => {
          response.once('close', () => {
            if (ticker !== null) clearInterval(ticker)
            resolve(!response.writableFinished)
          })
        })
        const exchange: Held = { url, response, closedBeforeEnd, release }
        allHeld.push(exchange)
        const waiter = heldWaiters.shift()
        if (waiter === undefined) held.push(exchange)
        else waiter(exchange)
      } else if (url === '/v1/messages' && body.includes('"stream":true')) {
        sse()
        for (const event of SDK_EVENTS) response.write(event)
        response.end()
      } else if (url === '/v1/messages' && body.includes('claude-test')) {
        const payload = JSON.stringify(SDK_MESSAGE)
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'request-id': 'req_sdk' })
        response.end(payload)
      } else {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(JSON_BODY), 'request-id': 'req_json' })
        response.end(JSON_BODY)
      }
    })
  })

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy()
    for (const exchange of allHeld.splice(0)) exchange.response.destroy()
    // A connection the proxy still keeps for a client that left would hold close() up.
    for (const proxy of proxies) proxy.app.server.closeAllConnections()
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
    await upstream.close()
  })

  async function proxyWith (options: Partial<ServerOptions> = {}): Promise<RunningProxy> {
    const proxy = await startProxy(upstream.url, options)
    proxies.push(proxy)
    return proxy
  }

  async function open (proxy: RunningProxy): Promise<Client> {
    const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1')
    sockets.push(socket)
    // A reset from the proxy shows as 'close'; the error itself is not what these tests check.
    socket.on('error', () => {})
    const closed = new Promise<void>((resolve) => { socket.once('close', () => resolve()) })
    const reader = new RawReader(socket)
    await once(socket, 'connect')
    return { socket, reader, closed }
  }

  describe('keep-alive and the hand-off to node:http', () => {
    // Without direct write, the front frames responses itself in lower case ("connection:"),
    // node:http in its own case ("Connection:"): the casing shows which side served a request.
    test('/v1 (front) → GET /health (handed to node:http) → /v1 (node:http), in order on one socket', async () => {
      const proxy = await proxyWith({ upstream: { origin: upstream.url, directWrite: false } })
      const { socket, reader } = await open(proxy)

      socket.write(post('/v1/messages', '{"n":1}'))
      const first = await reader.response()
      expect(first.statusLine).toBe('HTTP/1.1 200 OK')
      expect(first.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(first, 'request-id')).toBe('req_json')
      expect(first.lines).toContain('connection: keep-alive')
      expect(first.lines).toContain('keep-alive: timeout=72')

      socket.write(HEALTH)
      const health = await reader.response()
      expect(health.statusLine).toBe('HTTP/1.1 200 OK')
      expect(JSON.parse(health.body.toString('utf8'))).toEqual({ status: 'ok' })
      expect(health.lines).toContain('Connection: keep-alive')

      socket.write(post('/v1/messages', '{"n":3}'))
      const third = await reader.response()
      expect(third.statusLine).toBe('HTTP/1.1 200 OK')
      expect(third.body.toString('utf8')).toBe(JSON_BODY)
      expect(third.lines).toContain('Connection: keep-alive')

      expect(reader.unread.length).toBe(0)
      expect(reader.ended).toBe(false)
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"n":1}', '{"n":3}'])
    })

    test('a connection whose first request is GET /health serves a /v1 request after it', async () => {
      const proxy = await proxyWith({ upstream: { origin: upstream.url, directWrite: false } })
      const { socket, reader } = await open(proxy)

      socket.write(HEALTH)
      const health = await reader.response()
      expect(health.statusLine).toBe('HTTP/1.1 200 OK')
      expect(JSON.parse(health.body.toString('utf8'))).toEqual({ status: 'ok' })

      socket.write(post('/v1/messages', '{"after":"health"}'))
      const proxied = await reader.response()
      expect(proxied.statusLine).toBe('HTTP/1.1 200 OK')
      expect(proxied.body.toString('utf8')).toBe(JSON_BODY)
      expect(proxied.lines).toContain('Connection: keep-alive')
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"after":"health"}'])
      expect(reader.ended).toBe(false)
    })

    test('the official SDK (keep-alive fetch) gets JSON and streamed messages through the front', async () => {
      const proxy = await proxyWith()
      const client = new Anthropic({ baseURL: proxy.url, apiKey: 'sk-ant-test', maxRetries: 0 })
      const params = { model: 'claude-test', max_tokens: 64, messages: [{ role: 'user' as const, content: 'h\u00e9llo' }] }

      const { data, response } = await client.messages.create(params).withResponse()
      expect(response.headers.get('request-id')).toBe('req_sdk')
      expect(data).toEqual(SDK_MESSAGE)

      const stream = client.messages.stream(params)
      const types: string[] = []
      stream.on('streamEvent', (event) => { types.push(event.type) })
      const final = await stream.finalMessage()
      expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
      expect(final.content).toEqual([{ type: 'text', text: 'Hello w\u00f6rld \u2713' }])
      expect(final.stop_reason).toBe('end_turn')
      expect(final.usage.output_tokens).toBe(4)

      // Once more on the (by now reused) connection.
      expect(await client.messages.create(params)).toEqual(SDK_MESSAGE)
      expect(upstream.requests).toHaveLength(3)
      for (const request of upstream.requests) {
        expect(JSON.parse(request.body.toString('utf8'))).toMatchObject(params)
      }
      expect(JSON.parse((upstream.requests[1] as { body: Buffer }).body.toString('utf8')).stream).toBe(true)
    })
  })

  describe('pipelining', () => {
    test('JSON, a paced SSE stream and JSON in one write: answered complete and in order; the upstream saw each body exactly', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const bodies = ['{"n":1,"text":"caf\u00e9"}', '{"n":2,"stream":"paced"}', '{"n":3}']
      socket.write(post('/v1/messages', bodies[0] as string) + post('/v1/messages/stream', bodies[1] as string) + post('/v1/messages', bodies[2] as string))

      const first = await reader.response()
      const second = await reader.response()
      const third = await reader.response()
      expect([first.statusLine, second.statusLine, third.statusLine]).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK'])
      expect(first.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(first, 'request-id')).toBe('req_json')
      expect(header(second, 'content-type')).toBe('text/event-stream; charset=utf-8')
      expect(header(second, 'transfer-encoding')).toBe('chunked')
      expect(second.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(third.body.toString('utf8')).toBe(JSON_BODY)

      expect(upstream.requests.map((request) => [request.url, request.body.toString('utf8')])).toEqual([
        ['/v1/messages', bodies[0]], ['/v1/messages/stream', bodies[1]], ['/v1/messages', bodies[2]],
      ])
      expect(reader.unread.length).toBe(0)
      expect(reader.ended).toBe(false)
    })

    test('a /v1 stream and GET /health in one write: the hand-off waits until the stream has ended', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      socket.write(post('/v1/messages/stream', '{"n":1}') + HEALTH)

      const stream = await reader.response()
      expect(stream.statusLine).toBe('HTTP/1.1 200 OK')
      expect(stream.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(stream.chunks).toEqual(EVENTS.map((event) => Buffer.byteLength(event)))
      const health = await reader.response()
      expect(health.statusLine).toBe('HTTP/1.1 200 OK')
      expect(JSON.parse(health.body.toString('utf8'))).toEqual({ status: 'ok' })

      // Still in step after the hand-off.
      socket.write(post('/v1/messages', '{"n":2}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"n":1}', '{"n":2}'])
    })
    test('a /v1 stream, a POST with a body for another path, and /v1 JSON in one write: the hand-off carries the body, all three in order', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const handedBody = `{"not":"v1","padding":"${'p'.repeat(3_000)}"}`
      socket.write(post('/v1/messages/stream', '{"n":1}') + post('/v2/nope', handedBody) + post('/v1/messages', '{"n":3}'))

      const stream = await reader.response()
      expect(stream.body.toString('utf8')).toBe(EVENTS.join(''))
      const notFound = await reader.response()
      expect(notFound.statusLine).toBe('HTTP/1.1 404 Not Found')
      expect(errorOf(notFound).error.type).toBe('not_found_error')
      const json = await reader.response()
      expect(json.statusLine).toBe('HTTP/1.1 200 OK')
      expect(json.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.map((request) => [request.url, request.body.toString('utf8')])).toEqual([
        ['/v1/messages/stream', '{"n":1}'], ['/v1/messages', '{"n":3}'],
      ])
      expect(reader.unread.length).toBe(0)
      expect(reader.ended).toBe(false)
    })
  })

  describe('requests the front hands to node:http', () => {
    test('Expect: 100-continue: "100 Continue" first, then the body goes up and the proxied response comes back', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const body = '{"expect":"continue","text":"\u2713"}'
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}expect: 100-continue\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`)

      const interim = await reader.response(true)
      expect(interim.statusLine).toBe('HTTP/1.1 100 Continue')
      expect(upstream.requests).toHaveLength(0)

      socket.write(body)
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 200 OK')
      expect(response.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual([body])
      // The expectation is the proxy's to meet: it is not forwarded.
      expect((upstream.requests[0] as { rawHeaders: string[] }).rawHeaders.map((name) => name.toLowerCase())).not.toContain('expect')

      socket.write(post('/v1/messages', '{"n":2}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(reader.ended).toBe(false)
    })

    test('a head split across writes, with 40 header lines and UTF-8 bytes in a value, reaches the upstream intact from the front and after a hand-off', async () => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      const many = Array.from({ length: 40 }, (_, i) => `x-h-${i}: v${i}\r\n`).join('')
      const odd = Buffer.from('x-odd: caf\u00e9 \u2713\r\n', 'utf8')
      const send = async (path: string, body: string, extra: string): Promise<void> => {
        const head = Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\n${REQUEST_HEADERS}${many}`), odd, Buffer.from(`${extra}content-length: ${body.length}\r\n\r\n${body}`)])
        // Three pieces, each its own read on the proxy's side.
        for (const [from, to] of [[0, 40], [40, 700], [700, head.length]] as const) {
          await writeAndWait(socket, head.subarray(from, to))
          await sleep(20)
        }
      }
      await send('/v1/messages', '{"n":1}', '')
      const served = await reader.response()
      expect(served.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(served, 'connection')).toBe('keep-alive')
      // Connection: close is handed to node:http, with its head rebuilt by the front.
      await send('/v1/messages/handed', '{"n":2}', 'connection: close\r\n')
      const handed = await reader.response()
      expect(handed.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(handed, 'connection')).toBe('close')
      await within(closed, 2_000, 'the proxy closing the connection')

      expect(upstream.requests.map((request) => [request.url, request.body.toString('utf8')])).toEqual([['/v1/messages', '{"n":1}'], ['/v1/messages/handed', '{"n":2}']])
      for (const request of upstream.requests) {
        const names: string[] = []
        let oddValue: Buffer | undefined
        for (let i = 0; i < request.rawHeaders.length; i += 2) {
          const name = (request.rawHeaders[i] as string).toLowerCase()
          if (name.startsWith('x-h-')) names.push(`${name}: ${request.rawHeaders[i + 1] as string}`)
          if (name === 'x-odd') oddValue = Buffer.from(request.rawHeaders[i + 1] as string, 'latin1')
        }
        expect(names).toEqual(Array.from({ length: 40 }, (_, i) => `x-h-${i}: v${i}`))
        expect(oddValue).toEqual(Buffer.from('caf\u00e9 \u2713', 'utf8'))
      }
    })

    test.each([
      ['HTTP/1.0', post('/v1/messages', '{"v":"1.0"}').replace('HTTP/1.1', 'HTTP/1.0'), '{"v":"1.0"}', JSON_BODY],
      ['Connection: close (JSON)', post('/v1/messages', '{"close":1}', 'connection: close\r\n'), '{"close":1}', JSON_BODY],
      ['Connection: close (SSE)', post('/v1/messages/stream', '{"close":2}', 'connection: close\r\n'), '{"close":2}', EVENTS.join('')],
    ])('%s on /v1: answered completely, then the proxy closes the socket', async (_name, request, sent, expected) => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      socket.write(request)
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 200 OK')
      expect(header(response, 'connection')).toBe('close')
      expect(response.body.toString('utf8')).toBe(expected)
      await within(closed, 2_000, 'the proxy closing the connection')
      expect(reader.unread.length).toBe(0)
      expect(upstream.requests.map((entry) => entry.body.toString('utf8'))).toEqual([sent])
    })
  })

  describe('malformed requests and limits', () => {
    test('malformed bytes on a fresh connection: an Anthropic-shaped 400, then the socket closes', async () => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      socket.write('GARBAGE\r\n\r\n')
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 400 Bad Request')
      expect(header(response, 'connection')).toBe('close')
      expect(errorOf(response).error.type).toBe('invalid_request_error')
      await within(closed, 2_000, 'the proxy closing the connection')
      expect(upstream.requests).toHaveLength(0)
    })

    // Request-smuggling shapes: the front uses node:http's own parser in the same strict mode, so
    // both refuse them alike, and nothing reaches the upstream.
    test.each([
      ['content-length with transfer-encoding', 'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nhost: x\r\n\r\n'],
      ['chunked not last', 'POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
      ['two different content-lengths', 'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab'],
      ['an obsolete folded header line', 'GET /v1/models HTTP/1.1\r\nhost: x\r\n x-folded: 1\r\n\r\n'],
      ['bare LF line ends', 'GET /v1/models HTTP/1.1\nhost: x\n\n'],
    ])('%s: 400 on both fronts, the connection closes, nothing goes upstream', async (_name, raw) => {
      for (const front of [true, false]) {
        const proxy = await proxyWith({ front })
        const { socket, reader, closed } = await open(proxy)
        socket.write(raw)
        const response = await reader.response()
        expect(response.statusLine).toBe('HTTP/1.1 400 Bad Request')
        expect(errorOf(response).error.type).toBe('invalid_request_error')
        await within(closed, 2_000, 'the proxy closing the connection')
        expect(reader.unread.length).toBe(0)
      }
      expect(upstream.requests).toHaveLength(0)
    })

    test('malformed bytes after a served /v1 request on the same connection: 400, then the socket closes', async () => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      socket.write(post('/v1/messages', '{"n":1}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      socket.write('POST /v1/messages HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!')
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 400 Bad Request')
      expect(errorOf(response).error.type).toBe('invalid_request_error')
      await within(closed, 2_000, 'the proxy closing the connection')
      expect(upstream.requests).toHaveLength(1)
    })

    test('a header block larger than 16 KiB: an Anthropic-shaped 431, then the socket closes', async () => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}x-big: ${'a'.repeat(17 * 1024)}\r\ncontent-length: 2\r\n\r\n{}`)
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 431 Request Header Fields Too Large')
      const error = errorOf(response)
      expect(error.error.type).toBe('invalid_request_error')
      expect(error.error.message).toContain('HPE_HEADER_OVERFLOW')
      await within(closed, 2_000, 'the proxy closing the connection')
      expect(upstream.requests).toHaveLength(0)
    })

    test('a declared body over the limit: 413 at once, the body still sent is discarded, the next request is served', async () => {
      const proxy = await proxyWith({ limits: { jsonBytes: 100 } })
      const { socket, reader } = await open(proxy)
      // The discarded body looks like requests: none of it may be read as one.
      const smuggled = Buffer.alloc(1_000, 0x20)
      Buffer.from(`${HEALTH}${post('/v1/messages/smuggled', '{}')}`).copy(smuggled, 0)
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}content-length: ${smuggled.length}\r\n\r\n`)

      const rejected = await reader.response()
      expect(rejected.statusLine).toBe('HTTP/1.1 413 Payload Too Large')
      expect(header(rejected, 'x-apt-error-code')).toBe('APT_SERVER_BODY_TOO_LARGE')
      expect(errorOf(rejected).error.type).toBe('request_too_large')
      expect(header(rejected, 'connection')).toBe('keep-alive')

      await writeAndWait(socket, smuggled.subarray(0, 400))
      await writeAndWait(socket, smuggled.subarray(400))
      socket.write(post('/v1/messages', '{"ok":1}'))
      const next = await reader.response()
      expect(next.statusLine).toBe('HTTP/1.1 200 OK')
      expect(next.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.map((request) => [request.url, request.body.toString('utf8')])).toEqual([['/v1/messages', '{"ok":1}']])
      expect(reader.unread.length).toBe(0)
      expect(reader.ended).toBe(false)
    })
    test.each([true, false])('a chunked body that grows past the limit: 413, the rest of it is dropped, the next request on the connection is served (front %s)', async (front) => {
      const proxy = await proxyWith({ front, limits: { jsonBytes: 1_000 } })
      const { socket, reader, closed } = await open(proxy)
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}transfer-encoding: chunked\r\n\r\n`)
      const piece = pattern(600, 5)
      await writeAndWait(socket, `${piece.length.toString(16)}\r\n`)
      await writeAndWait(socket, Buffer.concat([piece, Buffer.from('\r\n')]))
      await writeAndWait(socket, `${piece.length.toString(16)}\r\n`)
      await writeAndWait(socket, Buffer.concat([piece, Buffer.from('\r\n')]))

      const rejected = await reader.response()
      expect(rejected.statusLine).toBe('HTTP/1.1 413 Payload Too Large')
      expect(header(rejected, 'x-apt-error-code')).toBe('APT_ADAPTER_BODY_TOO_LARGE')
      if (!front) {
        // node:http cannot go on past a half-read body: the reply says so and the connection closes.
        expect(header(rejected, 'connection')).toBe('close')
        await within(closed, 2_000, 'the proxy closes the connection')
        return
      }
      expect(header(rejected, 'connection')).toBe('keep-alive')
      // The client finishes its body anyway (far more than a stream buffers); the proxy reads and drops it, and goes on.
      const rest = pattern(300_000, 6)
      await writeAndWait(socket, `${rest.length.toString(16)}\r\n`)
      await writeAndWait(socket, Buffer.concat([rest, Buffer.from('\r\n0\r\n\r\n')]))
      socket.write(post('/v1/messages', '{"after":"413"}'))
      const next = await reader.response()
      expect(next.statusLine).toBe('HTTP/1.1 200 OK')
      expect(next.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.at(-1)?.body.toString('utf8')).toBe('{"after":"413"}')
      expect(reader.ended).toBe(false)
    })
  })

  describe('headers the proxy reads', () => {
    // Managed auth reads the presented key from the headers object: a repeated Authorization
    // header is resolved as node:http resolves it (the first one counts) on both fronts.
    test.each([true, false])('a repeated Authorization header: the first one counts (front %s)', async (front) => {
      const proxy = await proxyWith({ front, auth: { mode: 'managed', upstreamApiKey: 'sk-ant-upstream', proxyKeys: ['team-a'] } })
      const { socket, reader } = await open(proxy)
      const body = '{}'
      const request = (first: string, second: string): string =>
        `POST /v1/messages HTTP/1.1\r\nhost: proxy\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\nauthorization: Bearer ${first}\r\nauthorization: Bearer ${second}\r\ncontent-length: ${body.length}\r\n\r\n${body}`
      socket.write(request('team-a', 'wrong'))
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
      socket.write(request('wrong', 'team-a'))
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 401 Unauthorized')
      expect(upstream.requests).toHaveLength(1)
      const sent = (upstream.requests[0] as { rawHeaders: string[] }).rawHeaders
      expect(sent.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())).not.toContain('authorization')
      expect(sent[sent.findIndex((name) => name.toLowerCase() === 'x-api-key') + 1]).toBe('sk-ant-upstream')
    })
  })

  describe('request bodies', () => {
    test('a 2 MB body sent in several writes reaches the upstream byte-exact', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const body = pattern(2 * 1024 * 1024, 7)
      socket.write(`POST /v1/files HTTP/1.1\r\n${REQUEST_HEADERS}content-length: ${body.length}\r\n\r\n`)
      for (let at = 0; at < body.length; at += 300_000) await writeAndWait(socket, body.subarray(at, at + 300_000))

      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 200 OK')
      expect(response.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests).toHaveLength(1)
      const received = (upstream.requests[0] as { body: Buffer }).body
      expect(received.length).toBe(body.length)
      expect(received.equals(body)).toBe(true)

      socket.write(post('/v1/messages', '{"after":"upload"}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect((upstream.requests[1] as { body: Buffer }).body.toString('utf8')).toBe('{"after":"upload"}')
    })

    test.each([true, false])('trailer lines after a chunked body never become headers of the next request (front %s)', async (front) => {
      const proxy = await proxyWith({ front })
      const { socket, reader } = await open(proxy)
      await writeAndWait(socket, `POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-smuggled: 1\r\nanthropic-beta: from-trailer\r\n\r\n`)
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
      // The next head arrives in two reads, so the parser hands its lines over in pieces.
      await writeAndWait(socket, `POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}`)
      await sleep(50)
      socket.write('content-length: 2\r\n\r\n{}')
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')

      expect(upstream.requests).toHaveLength(2)
      expect(upstream.requests[0]?.body.toString('latin1')).toBe('hello')
      const names = (upstream.requests[1] as { rawHeaders: string[] }).rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
      expect(names).toContain('x-api-key')
      expect(names).not.toContain('x-smuggled')
      expect(names).not.toContain('anthropic-beta')
    })

    test('framing headers are read in any case: CONTENT-LENGTH, Transfer-ENCODING and EXPECT', async () => {
      const proxy = await proxyWith({ limits: { jsonBytes: 100 } })
      const { socket, reader } = await open(proxy)
      const large = Buffer.alloc(200, 0x20)
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}CONTENT-LENGTH: ${large.length}\r\n\r\n`)
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 413 Payload Too Large')
      await writeAndWait(socket, large)

      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}Transfer-ENCODING: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n`)
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
      expect((upstream.requests.at(-1) as { body: Buffer }).body.toString('latin1')).toBe('{"a":1}')

      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}EXPECT: 100-continue\r\ncontent-length: 2\r\n\r\n`)
      expect((await reader.response(true)).statusLine).toBe('HTTP/1.1 100 Continue')
      socket.write('{}')
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
    })

    test('a chunked body, its chunks in separate writes, reaches the upstream byte-exact', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const pieces = [pattern(10, 1), pattern(70_000, 2), pattern(1, 3), pattern(5_000, 4)]
      socket.write(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}transfer-encoding: chunked\r\n\r\n`)
      for (const piece of pieces) {
        await writeAndWait(socket, `${piece.length.toString(16)}\r\n`)
        await writeAndWait(socket, piece)
        await writeAndWait(socket, '\r\n')
      }
      await writeAndWait(socket, '0\r\n\r\n')

      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 200 OK')
      expect(response.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests).toHaveLength(1)
      expect((upstream.requests[0] as { body: Buffer }).body.equals(Buffer.concat(pieces))).toBe(true)

      socket.write(post('/v1/messages', '{"after":"chunked"}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(reader.ended).toBe(false)
    })
  })

  describe('what the operators see', () => {
    test('front connections and hand-offs by reason, in /metrics and /anthropic/metrics', async () => {
      const proxy = await proxyWith()
      const served = await open(proxy)
      served.socket.write(post('/v1/messages', '{}'))
      expect((await served.reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
      const reasons: [string, string][] = [
        ['route', HEALTH],
        ['version', 'GET /health HTTP/1.0\r\n\r\n'],
        ['close', 'GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'],
        ['expect', post('/v1/messages', '{}', 'expect: 100-continue\r\n')],
      ]
      for (const [, raw] of reasons) {
        const { socket, reader } = await open(proxy)
        socket.write(raw)
        await reader.waitFor('HTTP/1.1 ')
      }
      // Read through inject: no connection of its own, so the counts stay as the test made them.
      const text = (await proxy.app.inject({ url: '/metrics' })).body
      expect(text).toMatch(/^apt_front_connections_total 5$/m)
      for (const [reason] of reasons) expect(text).toMatch(new RegExp(`^apt_front_handoffs_total\\{reason="${reason}"\\} 1$`, 'm'))
      expect(text).toMatch(/^apt_front_handoffs_total\{reason="upgrade"\} 0$/m)
      const json = (await proxy.app.inject({ url: '/anthropic/metrics' })).json() as { router_metrics: { front: { connections: number, handoffs: Record<string, number> } } }
      // The first connection's request was plain (read without llhttp); the others were not.
      expect(text).toMatch(/^apt_front_plain_requests_total 1$/m)
      expect(json.router_metrics.front).toEqual({ connections: 5, handoffs: { route: 1, version: 1, close: 1, expect: 1, upgrade: 0 }, bypassed: 0, plain_requests: 1 })

      const off = await proxyWith({ front: false })
      expect((await off.app.inject({ url: '/metrics' })).body).not.toContain('apt_front_')
      expect(((await off.app.inject({ url: '/anthropic/metrics' })).json() as { router_metrics: { front: unknown } }).router_metrics.front).toBeNull()
    })
  })

  describe('upload back-pressure', () => {
    // An upstream that stops reading must stop the client's upload too, not have the proxy read
    // it into memory: the client's writes stall well before the whole body is out.
    test.each([true, false])('an upstream that stops reading stalls the client\'s upload; released, the body arrives byte-exact (front %s)', async (front) => {
      const size = 64 * 1024 * 1024
      let release = (): void => {}
      const released = new Promise<void>((resolve) => { release = resolve })
      let received = 0
      const hash = createHash('sha256')
      const slow = createServer((request, response) => {
        request.pause()
        void released.then(() => {
          request.on('data', (chunk: Buffer) => {
            received += chunk.length
            hash.update(chunk)
          })
          request.on('end', () => {
            response.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 })
            response.end('{}')
          })
          request.resume()
        })
      })
      slow.listen(0, '127.0.0.1')
      await once(slow, 'listening')
      try {
        const proxy = await proxyWith({ front, upstream: { origin: `http://127.0.0.1:${(slow.address() as AddressInfo).port}` } })
        const { socket, reader } = await open(proxy)
        const body = pattern(size, 9)
        socket.write(`POST /v1/files HTTP/1.1\r\n${REQUEST_HEADERS}content-length: ${size}\r\n\r\n`)
        let written = 0
        const piece = 1024 * 1024
        // Write until the socket stays full for 500 ms.
        for (;;) {
          if (written === size) break
          const ok = socket.write(body.subarray(written, written + piece))
          written += piece
          if (!ok) {
            const drained = await Promise.race([once(socket, 'drain').then(() => true), sleep(500).then(() => false)])
            if (!drained) break
          }
        }
        expect(written).toBeLessThan(size * 0.75)
        release()
        while (written < size) {
          if (!socket.write(body.subarray(written, written + piece))) await once(socket, 'drain')
          written += piece
        }
        const response = await reader.response()
        expect(response.statusLine).toBe('HTTP/1.1 200 OK')
        expect(received).toBe(size)
        expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'))
      } finally {
        release()
        slow.closeAllConnections()
        await new Promise<void>((resolve) => slow.close(() => resolve()))
      }
    })
  })

  describe('requests read without llhttp', () => {
    async function plainCount (proxy: RunningProxy): Promise<number> {
      const json = (await proxy.app.inject({ url: '/anthropic/metrics' })).json() as { router_metrics: { front: { plain_requests: number } } }
      return json.router_metrics.front.plain_requests
    }

    test('plain requests are read without llhttp, a connection\'s first one too; split, pipelined and chunked ones by llhttp, all in order', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      const ask = async (raw: string, body: string): Promise<void> => {
        socket.write(raw)
        const response = await reader.response()
        expect(response.statusLine, body).toBe('HTTP/1.1 200 OK')
        expect(response.body.toString('utf8')).toBe(JSON_BODY)
      }
      await ask(post('/v1/messages', '{"n":1}'), '1')
      expect(await plainCount(proxy)).toBe(1)
      await ask(post('/v1/messages', '{"n":2}'), '2')
      await ask(`GET /v1/models?limit=2 HTTP/1.1\r\n${REQUEST_HEADERS}\r\n`, 'models')
      expect(await plainCount(proxy)).toBe(3)
      // A head in two reads.
      const split = post('/v1/messages', '{"n":3}')
      await writeAndWait(socket, split.slice(0, 25))
      await sleep(30)
      await ask(split.slice(25), '3')
      // A body in a read of its own.
      const late = post('/v1/messages', '{"n":4}')
      await writeAndWait(socket, late.slice(0, late.length - 7))
      await sleep(30)
      await ask(late.slice(late.length - 7), '4')
      expect(await plainCount(proxy)).toBe(3)
      await ask(post('/v1/messages', '{"n":5}'), '5')
      // Two requests in one read.
      socket.write(post('/v1/messages', '{"n":6}') + post('/v1/messages', '{"n":7}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      // A chunked body, with a trailer line that must not become a header of what follows.
      await ask(`POST /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}transfer-encoding: chunked\r\n\r\n7\r\n{"n":8}\r\n0\r\nx-trailer: 1\r\n\r\n`, '8')
      await ask(post('/v1/messages', '{"n":9}'), '9')
      expect(await plainCount(proxy)).toBe(5)
      expect(upstream.requests.map((request) => `${request.method} ${request.url} ${request.body.toString('utf8')}`)).toEqual([
        'POST /v1/messages {"n":1}', 'POST /v1/messages {"n":2}', 'GET /v1/models?limit=2 ',
        ...[3, 4, 5, 6, 7, 8, 9].map((n) => `POST /v1/messages {"n":${n}}`),
      ])
      for (const request of upstream.requests) {
        const names = request.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
        const value = (name: string): string | undefined => request.rawHeaders[2 * names.indexOf(name) + 1]
        expect(value('x-api-key')).toBe('k')
        expect(value('anthropic-version')).toBe('2023-06-01')
        expect(names).not.toContain('x-trailer')
      }
      expect(reader.unread.length).toBe(0)
      expect(reader.ended).toBe(false)
    })

    test('closeIdleConnections() closes a connection whose requests were all read without llhttp (it has no parser), and one whose last were', async () => {
      const proxy = await proxyWith()
      const plainOnly = await open(proxy)
      for (let n = 0; n < 3; n++) {
        plainOnly.socket.write(post('/v1/messages', `{"n":${n}}`))
        expect((await plainOnly.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      }
      expect(await plainCount(proxy)).toBe(3)
      const mixed = await open(proxy)
      // A head in two reads: llhttp reads it, and the connection has a parser from then on.
      const split = post('/v1/messages', '{"n":3}')
      await writeAndWait(mixed.socket, split.slice(0, 25))
      await sleep(30)
      mixed.socket.write(split.slice(25))
      expect((await mixed.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      mixed.socket.write(post('/v1/messages', '{"n":4}'))
      expect((await mixed.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(await plainCount(proxy)).toBe(4)
      proxy.app.server.closeIdleConnections()
      await within(plainOnly.closed, 2_000, 'the connection without a parser closing')
      await within(mixed.closed, 2_000, 'the connection with a parser closing')
    })

    test('a connection that sends nothing is closed after the headers timeout; one that sent a request stays for the keep-alive timeout', async () => {
      const proxy = await proxyWith()
      proxy.app.server.headersTimeout = 300
      proxy.app.server.keepAliveTimeout = 5_000
      const silent = await open(proxy)
      const served = await open(proxy)
      served.socket.write(post('/v1/messages', '{"n":1}'))
      expect((await served.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      // Well before the keep-alive timeout.
      await within(silent.closed, 2_000, 'the silent connection closing')
      expect(silent.reader.unread.length).toBe(0)
      // The served one is idle too, but only for its keep-alive timeout.
      await sleep(300)
      expect(served.socket.destroyed).toBe(false)
      served.socket.write(post('/v1/messages', '{"n":2}'))
      expect((await served.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(await plainCount(proxy)).toBe(2)
    })

    test('without a keep-alive timeout a connection has its parser from the start: its first request goes through llhttp', async () => {
      const proxy = await proxyWith()
      proxy.app.server.keepAliveTimeout = 0
      const { socket, reader } = await open(proxy)
      for (let n = 0; n < 2; n++) {
        socket.write(post('/v1/messages', `{"n":${n}}`))
        expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      }
      expect(await plainCount(proxy)).toBe(1)
      proxy.app.server.closeIdleConnections()
    })

    test('a plain request for another route, or a plain one after a hand-off, is node:http\'s', async () => {
      const proxy = await proxyWith()
      const { socket, reader } = await open(proxy)
      socket.write(post('/v1/messages', '{"n":1}'))
      expect((await reader.response()).statusLine).toBe('HTTP/1.1 200 OK')
      socket.write(HEALTH)
      expect(JSON.parse((await reader.response()).body.toString('utf8'))).toEqual({ status: 'ok' })
      socket.write(post('/v1/messages', '{"n":2}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      // The first request only: from the hand-off on, the connection is node:http's.
      expect(await plainCount(proxy)).toBe(1)
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"n":1}', '{"n":2}'])
    })
  })

  describe('connection lifetime', () => {
    test('keep-alive timeout: an idle front connection is closed by the proxy', async () => {
      const proxy = await proxyWith()
      proxy.app.server.keepAliveTimeout = 300
      const { socket, reader, closed } = await open(proxy)
      socket.write(post('/v1/messages', '{"n":1}'))
      const response = await reader.response()
      expect(response.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(response, 'connection')).toBe('keep-alive')
      expect(reader.ended).toBe(false)
      await within(closed, 2_000, 'the proxy closing the idle connection')
      expect(socket.destroyed).toBe(true)
      expect(reader.unread.length).toBe(0)
    })

    test('a client that ends its side: an idle connection is closed with a FIN; a stream in flight is ended and its upstream request aborted', async () => {
      const proxy = await proxyWith()
      const idle = await open(proxy)
      let reset = false
      idle.socket.on('error', () => { reset = true })
      idle.socket.write(post('/v1/messages', '{"n":1}'))
      expect((await idle.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      idle.socket.end()
      await within(idle.closed, 2_000, 'the idle connection closing')
      // The proxy's side ended in order (its FIN read), not reset.
      expect(idle.reader.ended).toBe(true)
      expect(reset).toBe(false)
      expect(idle.reader.unread.length).toBe(0)

      const busy = await open(proxy)
      busy.socket.write(post('/v1/messages/gate', '{"n":2}'))
      const exchange = await nextHeld()
      await busy.reader.waitFor('message_start')
      busy.socket.end()
      await within(busy.closed, 2_000, 'the streaming connection closing')
      expect(await within(exchange.closedBeforeEnd, 2_000, 'the upstream request being aborted')).toBe(true)
      expect(busy.reader.unread.toString('latin1')).not.toContain('message_stop')
    })

    test('keep-alive timeout: a connection sending a request every 100 ms stays open', async () => {
      const proxy = await proxyWith()
      proxy.app.server.keepAliveTimeout = 300
      const { socket, reader, closed } = await open(proxy)
      for (let n = 0; n < 10; n++) {
        socket.write(post('/v1/messages', `{"n":${n}}`))
        const response = await reader.response()
        expect(response.body.toString('utf8')).toBe(JSON_BODY)
        expect(reader.ended).toBe(false)
        await sleep(100)
      }
      expect(reader.ended).toBe(false)
      expect(upstream.requests).toHaveLength(10)
      // And the timer still runs once the requests stop.
      await within(closed, 2_000, 'the proxy closing the connection once idle')
    })

    test.each([
      { side: 'front', front: true },
      { side: 'node:http (front: false)', front: false },
    ])('$side: keep-alive timeout: a request head that arrives in pieces is not cut off', async ({ front }) => {
      const proxy = await proxyWith({ front })
      proxy.app.server.keepAliveTimeout = 500
      const { socket, reader } = await open(proxy)
      socket.write(post('/v1/messages', '{"n":1}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      // Bytes keep coming, 300 ms apart: no silence as long as the timeout, though the head takes longer.
      const next = post('/v1/messages', '{"n":2}')
      await sleep(300)
      socket.write(next.slice(0, 30))
      await sleep(300)
      socket.write(next.slice(30))
      const response = await reader.response()
      expect(response.statusLine).toBe('HTTP/1.1 200 OK')
      expect(response.body.toString('utf8')).toBe(JSON_BODY)
      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"n":1}', '{"n":2}'])
    })
  })

  describe('a client that leaves', () => {
    test.each([
      { side: 'front', front: true, path: '/v1/messages/ticker', when: 'while events flow' },
      { side: 'front', front: true, path: '/v1/messages/silent', when: 'in a pause between events' },
      { side: 'front', front: true, path: '/v1/messages/pending', when: 'before the upstream answered' },
      { side: 'node:http (front: false)', front: false, path: '/v1/messages/silent', when: 'in a pause between events' },
      { side: 'node:http (front: false)', front: false, path: '/v1/messages/pending', when: 'before the upstream answered' },
    ])('$side: leaving $when aborts the upstream request', async ({ front, path }) => {
      const proxy = await proxyWith({ front })
      const { socket, reader } = await open(proxy)
      socket.write(post(path, '{"leave":true}'))
      const exchange = await nextHeld()
      // For the streams, the client leaves after its first event has arrived.
      if (path !== '/v1/messages/pending') await reader.waitFor('message_start')
      socket.destroy()
      expect(await within(exchange.closedBeforeEnd, 2_000, 'the upstream request being aborted')).toBe(true)
    })

    test.each([
      { side: 'front', front: true },
      { side: 'node:http (front: false)', front: false },
    ])('$side: leaving in the middle of a large body, while the request waits for an upstream connection: no uncaught error, the proxy serves on', async ({ front }) => {
      const proxy = await proxyWith({ front, upstream: { origin: upstream.url, maxConnections: 1 } })
      const uncaught: unknown[] = []
      const onUncaught = (error: unknown): void => { uncaught.push(error) }
      process.on('uncaughtException', onUncaught)
      try {
        const first = await open(proxy)
        first.socket.write(post('/v1/messages/gate', '{"n":1}'))
        const exchange = await nextHeld()
        await first.reader.waitFor('message_start')

        // The one upstream connection is busy: this upload waits for it, and nothing reads its body
        // yet. 10 KB stays under the body stream's buffer, so the proxy keeps reading and sees the FIN.
        const accepted = new Promise<Socket>((resolve) => { proxy.app.server.once('connection', resolve) })
        const uploader = await open(proxy)
        const serverSide = await accepted
        uploader.socket.write(`POST /v1/files HTTP/1.1\r\n${REQUEST_HEADERS}content-length: 1000000\r\n\r\n`)
        await writeAndWait(uploader.socket, pattern(10_000, 5))
        for (let i = 0; i < 200 && proxy.app.apt.inFlight().requests < 2; i++) await sleep(5)
        expect(proxy.app.apt.inFlight().requests).toBe(2)
        const ended = new Promise<void>((resolve) => { serverSide.once('end', resolve) })
        uploader.socket.destroy()
        await within(ended, 2_000, 'the proxy seeing the client end')
        // An error emitted on the next tick has surfaced by now.
        await new Promise((resolve) => setImmediate(resolve))
        expect(uncaught).toEqual([])

        exchange.release()
        expect((await first.reader.response()).body.toString('utf8')).toBe(EVENTS.join(''))
        const after = await open(proxy)
        after.socket.write(post('/v1/messages', '{"n":3}'))
        expect((await after.reader.response()).body.toString('utf8')).toBe(JSON_BODY)
        expect(upstream.requests.map((request) => request.url)).toEqual(['/v1/messages/gate', '/v1/messages'])
      } finally {
        process.off('uncaughtException', onUncaught)
      }
    })
  })

  describe('closing connections from the server side', () => {
    test('closeIdleConnections() closes an idle front connection and leaves a streaming one alone', async () => {
      const proxy = await proxyWith()
      const idle = await open(proxy)
      idle.socket.write(post('/v1/messages', '{"n":1}'))
      expect((await idle.reader.response()).body.toString('utf8')).toBe(JSON_BODY)

      const busy = await open(proxy)
      busy.socket.write(post('/v1/messages/gate', '{"n":2}'))
      const exchange = await nextHeld()
      await busy.reader.waitFor('message_start')

      proxy.app.server.closeIdleConnections()
      await within(idle.closed, 2_000, 'the idle connection closing')
      expect(busy.reader.ended).toBe(false)
      exchange.release()
      const stream = await busy.reader.response()
      expect(stream.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(await exchange.closedBeforeEnd).toBe(false)
    })

    test('closeAllConnections() destroys a front connection in the middle of a stream, and the upstream request is aborted', async () => {
      const proxy = await proxyWith()
      const { socket, reader, closed } = await open(proxy)
      socket.write(post('/v1/messages/gate', '{"n":1}'))
      const exchange = await nextHeld()
      await reader.waitFor('message_start')

      proxy.app.server.closeAllConnections()
      await within(closed, 2_000, 'the busy connection closing')
      expect(reader.unread.toString('latin1')).not.toContain('message_stop')
      expect(await within(exchange.closedBeforeEnd, 2_000, 'the upstream request being aborted')).toBe(true)
    })

    test('draining: a stream in flight finishes completely; a request after it gets 503 with connection: close', async () => {
      const proxy = await proxyWith()
      const idle = await open(proxy)
      idle.socket.write(post('/v1/messages', '{"n":0}'))
      expect((await idle.reader.response()).body.toString('utf8')).toBe(JSON_BODY)

      const streaming = await open(proxy)
      streaming.socket.write(post('/v1/messages/gate', '{"n":1}'))
      const exchange = await nextHeld()
      await streaming.reader.waitFor('message_start')

      proxy.app.apt.startDrain()
      // Idle keep-alive connections are closed at once.
      await within(idle.closed, 2_000, 'the idle connection closing')
      // A request pipelined behind the stream is answered after it, with 503.
      streaming.socket.write(post('/v1/messages', '{"n":2}'))
      exchange.release()
      const stream = await streaming.reader.response()
      expect(stream.statusLine).toBe('HTTP/1.1 200 OK')
      expect(stream.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(stream.chunks).not.toBeNull()
      const refused = await streaming.reader.response()
      expect(refused.statusLine).toBe('HTTP/1.1 503 Service Unavailable')
      expect(header(refused, 'connection')).toBe('close')
      expect(header(refused, 'retry-after')).toBe('1')
      expect(errorOf(refused).error.type).toBe('overloaded_error')
      await within(streaming.closed, 2_000, 'the streaming connection closing')

      // A new connection's request is refused the same way.
      const late = await open(proxy)
      late.socket.write(post('/v1/messages', '{"n":3}'))
      const lateResponse = await late.reader.response()
      expect(lateResponse.statusLine).toBe('HTTP/1.1 503 Service Unavailable')
      expect(header(lateResponse, 'connection')).toBe('close')
      expect(errorOf(lateResponse).error.type).toBe('overloaded_error')
      await within(late.closed, 2_000, 'the new connection closing')

      expect(upstream.requests.map((request) => request.body.toString('utf8'))).toEqual(['{"n":0}', '{"n":1}'])
    })
  })

  describe('the same bytes as node:http', () => {
    /** Head lines without the values that differ between two calls (date, server-timing duration). */
    function comparable (response: RawResponse): string[] {
      return response.lines
        .filter((line) => !line.toLowerCase().startsWith('date:'))
        .map((line) => line.toLowerCase().startsWith('server-timing:') ? line.replace(/dur=[\d.]+/, 'dur=<ms>') : line)
    }

    test.each([
      ['JSON', '/v1/messages'],
      ['SSE', '/v1/messages/stream'],
    ])('%s: the front sends what node:http sends for the same upstream response', async (_name, path) => {
      const withFront = await proxyWith()
      const withoutFront = await proxyWith({ front: false })
      const responses: RawResponse[] = []
      for (const proxy of [withFront, withoutFront]) {
        const { socket, reader } = await open(proxy)
        socket.write(post(path, '{"same":"bytes"}'))
        responses.push(await reader.response())
      }
      const [front, node] = responses as [RawResponse, RawResponse]
      expect(front.statusLine).toBe(node.statusLine)
      expect(comparable(front)).toEqual(comparable(node))
      expect(front.body.equals(node.body)).toBe(true)
      expect(front.body.toString('utf8')).toBe(path === '/v1/messages' ? JSON_BODY : EVENTS.join(''))
      expect(front.chunks).toEqual(node.chunks)
      expect(header(front, 'server-timing')).toMatch(/^proxy;desc="apt overhead";dur=\d+\.\d{3}$/)
    })

    test('a proxy-generated error reply (413) carries the header fields node:http sends', async () => {
      const responses: RawResponse[] = []
      for (const front of [true, false]) {
        const proxy = await proxyWith({ front, limits: { jsonBytes: 10 } })
        const { socket, reader } = await open(proxy)
        socket.write(post('/v1/messages', '{"too":"long for ten bytes"}'))
        responses.push(await reader.response())
      }
      const [front, node] = responses as [RawResponse, RawResponse]
      // Names compared without case; the values of date and request-id differ between two calls.
      const fields = (response: RawResponse): string[] => response.headers
        .map(([name, value]) => name === 'date' || name === 'request-id' ? name : `${name}: ${value}`)
        .sort()
      expect(front.statusLine).toBe(node.statusLine)
      expect(fields(front)).toEqual(fields(node))
      const withoutId = (response: RawResponse): unknown => ({ ...errorOf(response), request_id: '<id>' })
      expect(withoutId(front)).toEqual(withoutId(node))
      expect(errorOf(front).request_id).toBe(header(front, 'request-id'))
    })
  })
})
