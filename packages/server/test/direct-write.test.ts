import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type FakeUpstream, type RunningProxy, startFakeUpstream, startProxy, TEST_FRONT, writePaced } from './helpers.js'
import { header, post, RawReader, REQUEST_HEADERS } from './raw-http.js'

/**
 * The response head and body go straight to the client socket on keep-alive connections
 * ("direct write"), and through ServerResponse otherwise. These tests read the raw bytes
 * the client receives, so framing, headers and connection handling are checked exactly.
 */

const EVENTS = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\u00e9llo \u2713"}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
const JSON_BODY = '{"id":"msg_2","type":"message","content":[{"type":"text","text":"caf\u00e9"}],"usage":{"input_tokens":1,"output_tokens":2}}'

/** A promise and the function that resolves it (Promise.withResolvers is not in Node 20). */
function gate (): { promise: Promise<void>, resolve: () => void } {
  let resolve = (): void => {}
  const promise = new Promise<void>((done) => { resolve = done })
  return { promise, resolve }
}

const SIZES = [1, 15, 16, 255, 256, 4095, 4096, 16_383, 16_384]
const BIG = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff))

// The same wire results with direct write on (the default) and off; the casing of the framing
// lines node:http adds ("Connection") and direct write adds ("connection") shows which path ran.
describe.each([true, false])('directWrite %s', (directWrite) => {
  let upstream: FakeUpstream
  let proxy: RunningProxy
  let port: number
  let releaseLateBody = gate()

  beforeAll(async () => {
    upstream = await startFakeUpstream((request, response) => {
      if (request.url === '/v1/messages/stream') {
        response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_sse', 'anthropic-ratelimit-requests-remaining': '99', 'x-odd': 'caf\u00e9' })
        writePaced(response, EVENTS, 5)
      } else if (request.url === '/v1/messages/big') {
        // Chunked, with one piece far above the 16 KiB copy-framing threshold.
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'request-id': 'req_big' })
        response.write(BIG.subarray(0, 100))
        response.write(BIG.subarray(100, BIG.length - 10))
        response.end(BIG.subarray(BIG.length - 10))
      } else if (request.url === '/v1/messages/late-body') {
        // The head now, the body only once the test has seen the head arrive at the client.
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(JSON_BODY), 'request-id': 'req_late' })
        response.flushHeaders()
        void releaseLateBody.promise.then(() => response.end(JSON_BODY))
      } else if (request.url === '/v1/messages/sizes') {
        // Pieces whose size lines take one to four hex digits, up to the 16 KiB framed by copying.
        response.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_sizes' })
        writePaced(response, SIZES.map((size) => 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(size / 26)).slice(0, size)), 5)
      } else if (request.url === '/v1/messages/zero') {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': 0, 'request-id': 'req_zero' })
        response.end()
      } else if (request.url === '/v1/messages/large-json') {
        // One content-length body above the 16 KiB that is joined to the head in one buffer.
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length, 'request-id': 'req_large' })
        response.end(BIG)
      } else if (request.url === '/v1/messages/phrase') {
        response.writeHead(299, 'Fine By Me', { 'content-type': 'application/json', 'content-length': 2 })
        response.end('{}')
      } else if (request.url === '/v1/messages/missing') {
        response.writeHead(404, { 'content-type': 'application/json', 'content-length': 2 })
        response.end('{}')
      } else if (request.url === '/v1/messages/empty') {
        response.writeHead(204, { 'request-id': 'req_204' })
        response.end()
      } else {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(JSON_BODY), 'request-id': 'req_json', 'x-odd': 'caf\u00e9' })
        response.end(JSON_BODY)
      }
    })
    proxy = await startProxy(upstream.url, { upstream: { origin: upstream.url, directWrite } })
    port = Number(new URL(proxy.url).port)
  })

  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })

  async function open (): Promise<{ socket: Socket, reader: RawReader }> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    return { socket, reader: new RawReader(socket) }
  }

  test('keep-alive: JSON, a chunked SSE stream, a 204 and a HEAD on one connection, each framed exactly, upstream headers as sent', async () => {
    const { socket, reader } = await open()
    try {
      socket.write(post('/v1/messages', '{"a":1}'))
      const json = await reader.response()
      expect(json.statusLine).toBe('HTTP/1.1 200 OK')
      expect(json.body.toString('utf8')).toBe(JSON_BODY)
      expect(header(json, 'content-length')).toBe(String(Buffer.byteLength(JSON_BODY)))
      expect(header(json, 'request-id')).toBe('req_json')
      // node:http (the fake upstream) sends this value as UTF-8 bytes; they arrive unchanged.
      expect(Buffer.from(header(json, 'x-odd') as string, 'latin1')).toEqual(Buffer.from('caf\u00e9', 'utf8'))
      expect(header(json, 'connection')).toBe('keep-alive')
      // The front (on by default) frames its own replies, in lower case like direct write.
      expect(json.lines).toContain(directWrite || TEST_FRONT ? 'connection: keep-alive' : 'Connection: keep-alive')
      expect(header(json, 'keep-alive')).toBe('timeout=72')
      expect(header(json, 'transfer-encoding')).toBeUndefined()
      expect(header(json, 'server-timing')).toMatch(/^proxy;desc="apt overhead";dur=\d+\.\d{3}$/)

      socket.write(post('/v1/messages/stream', '{"stream":true}'))
      const sse = await reader.response()
      expect(sse.statusLine).toBe('HTTP/1.1 200 OK')
      expect(header(sse, 'transfer-encoding')).toBe('chunked')
      expect(header(sse, 'content-type')).toBe('text/event-stream; charset=utf-8')
      expect(header(sse, 'anthropic-ratelimit-requests-remaining')).toBe('99')
      // A head sent ahead of the first event keeps its raw bytes too, on every path. node:http
      // (the fake upstream) sends a chunked head with the first size line, as latin1: one byte.
      expect(Buffer.from(header(sse, 'x-odd') as string, 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]))
      expect(sse.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(sse.chunks).toEqual(EVENTS.map((event) => Buffer.byteLength(event)))

      socket.write(post('/v1/messages/big', '{}'))
      const big = await reader.response()
      expect(header(big, 'transfer-encoding')).toBe('chunked')
      expect(big.body.equals(BIG)).toBe(true)

      socket.write(post('/v1/messages/empty', '{}'))
      const empty = await reader.response(true)
      expect(empty.statusLine).toBe('HTTP/1.1 204 No Content')
      expect(header(empty, 'transfer-encoding')).toBeUndefined()

      socket.write(`HEAD /v1/messages HTTP/1.1\r\n${REQUEST_HEADERS}\r\n`)
      const head = await reader.response(true)
      expect(head.statusLine).toBe('HTTP/1.1 200 OK')
      expect(header(head, 'content-length')).toBe(String(Buffer.byteLength(JSON_BODY)))

      // The connection is still in step: one more request gets its own complete answer.
      socket.write(post('/v1/messages', '{"a":2}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
      expect(reader.ended).toBe(false)
    } finally {
      socket.destroy()
    }
  })

  test('chunk size lines are the lower-case hex of each piece, one to four digits, as the upstream framed them', async () => {
    const { socket, reader } = await open()
    try {
      socket.write(post('/v1/messages/sizes', '{}'))
      const sized = await reader.response()
      expect(sized.chunks).toEqual(SIZES)
      expect(sized.sizeLines).toEqual([...SIZES.map((size) => size.toString(16)), '0'])
      expect(sized.body.length).toBe(SIZES.reduce((sum, size) => sum + size, 0))
    } finally {
      socket.destroy()
    }
  })

  test('the status line carries the upstream reason phrase, standard or not, and the same again on a later response', async () => {
    const { socket, reader } = await open()
    try {
      for (let i = 0; i < 2; i++) {
        socket.write(post('/v1/messages/phrase', '{}'))
        const phrase = await reader.response()
        expect(phrase.statusLine).toBe('HTTP/1.1 299 Fine By Me')
        expect(phrase.body.toString()).toBe('{}')
        socket.write(post('/v1/messages/missing', '{}'))
        const missing = await reader.response()
        expect(missing.statusLine).toBe('HTTP/1.1 404 Not Found')
        expect(header(missing, 'content-length')).toBe('2')
      }
    } finally {
      socket.destroy()
    }
  })

  test('content-length bodies: the head reaches the client before a late body, alone for an empty body, and a large body follows it whole', async () => {
    const { socket, reader } = await open()
    try {
      releaseLateBody = gate()
      let received = ''
      const headArrived = new Promise<void>((resolve) => {
        const onData = (data: Buffer): void => {
          received += data.toString('latin1')
          if (received.includes('\r\n\r\n')) {
            socket.off('data', onData)
            resolve()
          }
        }
        socket.on('data', onData)
      })
      socket.write(post('/v1/messages/late-body', '{}'))
      // The proxy holds a content-length head only until the end of the tick it arrived in.
      await headArrived
      expect(received.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true)
      expect(received.endsWith('\r\n\r\n')).toBe(true)
      releaseLateBody.resolve()
      const late = await reader.response()
      expect(header(late, 'request-id')).toBe('req_late')
      expect(late.body.toString('utf8')).toBe(JSON_BODY)

      socket.write(post('/v1/messages/zero', '{}'))
      const zero = await reader.response()
      expect(zero.statusLine).toBe('HTTP/1.1 200 OK')
      expect(header(zero, 'content-length')).toBe('0')
      expect(zero.body.length).toBe(0)

      socket.write(post('/v1/messages/large-json', '{}'))
      const large = await reader.response()
      expect(header(large, 'content-length')).toBe(String(BIG.length))
      expect(header(large, 'transfer-encoding')).toBeUndefined()
      expect(large.body.equals(BIG)).toBe(true)

      // Still in step after all three.
      socket.write(post('/v1/messages', '{"a":3}'))
      expect((await reader.response()).body.toString('utf8')).toBe(JSON_BODY)
    } finally {
      socket.destroy()
    }
  })

  test('pipelined requests in one packet are answered in order, each complete', async () => {
    const { socket, reader } = await open()
    try {
      socket.write(post('/v1/messages/stream', '{"n":1}') + post('/v1/messages', '{"n":2}') + post('/v1/messages/stream', '{"n":3}'))
      const first = await reader.response()
      const second = await reader.response()
      const third = await reader.response()
      expect(first.body.toString('utf8')).toBe(EVENTS.join(''))
      expect(second.body.toString('utf8')).toBe(JSON_BODY)
      expect(third.body.toString('utf8')).toBe(EVENTS.join(''))
    } finally {
      socket.destroy()
    }
  })

  test('connection: close and HTTP/1.0 requests go through ServerResponse: complete body, then the connection closes', async () => {
    for (const request of [post('/v1/messages/stream', '{}', 'connection: close\r\n'), post('/v1/messages', '{}').replace('HTTP/1.1', 'HTTP/1.0')]) {
      const { socket, reader } = await open()
      try {
        socket.write(request)
        const response = await reader.response()
        expect(response.statusLine).toBe('HTTP/1.1 200 OK')
        expect(header(response, 'connection')).toBe('close')
        expect([EVENTS.join(''), JSON_BODY]).toContain(response.body.toString('utf8'))
        if (!reader.ended) await once(socket, 'close')
      } finally {
        socket.destroy()
      }
    }
  })
})
