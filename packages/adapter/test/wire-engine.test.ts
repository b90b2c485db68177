import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { afterEach, describe, expect, test } from 'vitest'
import { createUpstreamClient, type Exchange, type UpstreamClient } from '@apt/adapter'
import { collectedByGc } from '../../../test/support/collected-by-gc.js'

// Behaviours specific to the wire engine (apt's own HTTP/1.1 pool on Node's llhttp parser).
// The proxy-level suites in packages/server/test cover timeouts, stale-socket replay, pool wait,
// aborts and back-pressure through it; this file covers the HTTP/1.1 framing and pool rules.

type ForwardRequest = Parameters<UpstreamClient['forward']>[0]

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Poll until `condition` holds; fail with `what` after 10 s (a broken pool fails here, not at the test timeout). */
async function waitFor (condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

async function listen (server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

interface RawUpstream {
  origin: string
  /** Connections accepted so far. */
  connections: Socket[]
  /** Request lines received, e.g. `GET /a HTTP/1.1`, with the connection's index. */
  requests: { line: string, connection: number }[]
}

/**
 * A raw TCP upstream for responses node:http will not write (interim, close-delimited,
 * malformed). `reply` gets each request (bodiless: heads only) and writes whatever it likes.
 */
async function rawUpstream (reply: (socket: Socket, line: string, connection: number) => void): Promise<RawUpstream> {
  const connections: Socket[] = []
  const requests: RawUpstream['requests'] = []
  const server: NetServer = createNetServer((socket) => {
    const index = connections.push(socket) - 1
    let buffered = ''
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      let end = buffered.indexOf('\r\n\r\n')
      while (end !== -1) {
        const line = buffered.slice(0, buffered.indexOf('\r\n'))
        buffered = buffered.slice(end + 4)
        requests.push({ line, connection: index })
        reply(socket, line, index)
        end = buffered.indexOf('\r\n\r\n')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise<void>((resolve) => {
    for (const socket of connections) socket.destroy()
    server.close(() => resolve())
  }))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections, requests }
}

function wireClient (origin: string, options: Omit<Parameters<typeof createUpstreamClient>[0], 'origin' | 'engine'> = {}): UpstreamClient {
  // The vitest project "wire-stream-reads" runs this file with APT_TEST_WIRE_CONSUME=false.
  const client = createUpstreamClient({ origin, engine: 'wire', wireConsume: process.env.APT_TEST_WIRE_CONSUME !== 'false', ...options })
  cleanups.push(() => client.destroy())
  return client
}

/**
 * A front server that forwards every request through the client and reports the exchange.
 * `build` turns the incoming request into what is forwarded (default: method and path, no headers, no body).
 */
async function front (client: UpstreamClient, build?: (request: IncomingMessage) => ForwardRequest): Promise<{ url: string, exchanges: Exchange[] }> {
  const exchanges: Exchange[] = []
  const server = createServer((request, response) => {
    const forwarded = build?.(request) ?? { method: request.method as string, path: request.url as string, headers: [], body: null }
    client.forward(forwarded, response, (exchange) => {
      exchanges.push(exchange)
      if (exchange.error !== null && !exchange.headersSent && !response.headersSent) {
        response.writeHead(502)
        response.end(exchange.error.code)
      }
    })
  })
  return { url: await listen(server), exchanges }
}

/**
 * A one-connection wire client whose upstream holds `/first` (in `held`) and answers every
 * other path at once; `/first` has been sent and is being held when this resolves.
 */
async function oneConnectionHoldingFirst (): Promise<{ client: UpstreamClient, url: string, exchanges: Exchange[], held: ServerResponse[], paths: string[], first: Promise<string> }> {
  const held: ServerResponse[] = []
  const paths: string[] = []
  const upstream = createServer((request, response) => {
    paths.push(request.url as string)
    if (request.url === '/first') held.push(response)
    else response.end(`done ${request.url as string}`)
  })
  const client = wireClient(await listen(upstream), { maxConnections: 1 })
  const { url, exchanges } = await front(client)
  const first = fetch(`${url}/first`).then(async (response) => response.text())
  await waitFor(() => held.length === 1, 'the upstream to hold the first request')
  return { client, url, exchanges, held, paths, first }
}

/** `promise`, or a failure naming `what` after 10 s. */
async function within<T> (promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`timed out waiting for ${what}`)) }, 10_000)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** A self-signed certificate for 127.0.0.1, trusted by passing it as the client's `tlsCa`. */
function selfSignedCert (): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'apt-wire-tls-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

/** An HTTPS upstream on 127.0.0.1, closed after the test. */
async function listenTls (handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ origin: string, cert: Buffer }> {
  const { key, cert } = selfSignedCert()
  const server = createHttpsServer({ key, cert }, handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, cert }
}

/** Collect an upstream request's body; an aborted or malformed one resolves to null (the test then fails on it). */
async function readBody (request: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  try {
    for await (const chunk of request) chunks.push(chunk as Buffer)
  } catch {
    return null
  }
  return Buffer.concat(chunks)
}

describe('wire engine', () => {
  test('a connection idles past the body and headers timeouts after its response and is reused: its one timer is re-armed for idling', async () => {
    const sockets = new Set<Socket>()
    const upstream = createServer((request, response) => {
      sockets.add(request.socket)
      response.end('ok')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin, { bodyTimeoutMs: 150, headersTimeoutMs: 150 })
    const { url, exchanges } = await front(client)
    for (const path of ['/one', '/two', '/three']) {
      expect(await (await fetch(`${url}${path}`)).text()).toBe('ok')
      await sleep(400) // well past both timeouts, far from the 30 s keep-alive
    }
    expect(sockets.size).toBe(1)
    expect(client.stats()).toMatchObject({ requests: 3, connectionsOpened: 1, hits: 2, errors: 0 })
    expect(exchanges.map((exchange) => exchange.reusedSocket)).toEqual([false, true, true])
  })

  test('each phase keeps its own timeout though the one timer is left armed for an earlier one: headers after idle, then idle itself', async () => {
    const sockets: Socket[] = []
    const closed: Socket[] = []
    const upstream = createServer((request, response) => {
      if (!sockets.includes(request.socket)) {
        sockets.push(request.socket)
        request.socket.on('close', () => closed.push(request.socket))
      }
      if (request.url !== '/hang') response.end('ok')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin, { maxConnections: 1, keepAliveTimeoutMs: 300, headersTimeoutMs: 600 })
    const { url } = await front(client)
    expect(await (await fetch(`${url}/ok`)).text()).toBe('ok')
    // The timer now fires 300 ms after that response (idle); the headers phase below ends later.
    await sleep(100)
    const sent = performance.now()
    const hung = await fetch(`${url}/hang`)
    const waited = performance.now() - sent
    expect(hung.status).toBe(502)
    expect(client.stats().timeouts.headers).toBe(1)
    // Not at the idle timer's 200 ms, and not long after the headers timeout either.
    expect(waited).toBeGreaterThanOrEqual(590)
    expect(waited).toBeLessThan(3000)
    await waitFor(() => closed.length === 1, 'the timed-out connection to close')

    // Idle: reused inside the keep-alive timeout, closed by the pool once it has passed.
    expect(await (await fetch(`${url}/ok`)).text()).toBe('ok')
    await sleep(150)
    expect(await (await fetch(`${url}/ok`)).text()).toBe('ok')
    expect(sockets).toHaveLength(2)
    const released = performance.now()
    await waitFor(() => closed.length === 2, 'the idle connection to close')
    const idled = performance.now() - released
    expect(idled).toBeGreaterThanOrEqual(280)
    expect(idled).toBeLessThan(3000)
    expect(client.stats()).toMatchObject({ connectionsOpened: 2, hits: 2 })
  })

  test('an upstream Keep-Alive: timeout=N hint is trusted minus 1 s: the pool drops the idle socket before the upstream would', async () => {
    const sockets: Socket[] = []
    /** How each upstream socket ended: 'end' when the client closed it, 'close' when the server timed it out. */
    const endings = new Map<Socket, Promise<'end' | 'close'>>()
    const upstream = createServer((request, response) => {
      const socket = request.socket
      if (!endings.has(socket)) {
        sockets.push(socket)
        endings.set(socket, Promise.race([
          once(socket, 'end').then(() => 'end' as const),
          once(socket, 'close').then(() => 'close' as const),
        ]))
      }
      response.end('ok')
    })
    // node:http announces `Keep-Alive: timeout=3` and closes idle sockets after 3 s.
    upstream.keepAliveTimeout = 3000
    const origin = await listen(upstream)
    const client = wireClient(origin) // keepAliveTimeoutMs stays at its 30 s default: only the hint can shorten it
    const { url, exchanges } = await front(client)

    expect(await (await fetch(`${url}/one`)).text()).toBe('ok')
    await sleep(200)
    expect(await (await fetch(`${url}/two`)).text()).toBe('ok')
    expect(client.stats()).toMatchObject({ connectionsOpened: 1, hits: 1, misses: 1 })
    expect(sockets.length).toBe(1)

    // The pool closes the idle socket itself (hinted 3 s - 1 s margin = 2 s), so the upstream sees
    // the client's FIN; had the hint been ignored, the upstream would time the socket out at 3 s instead.
    expect(await endings.get(sockets[0] as Socket)).toBe('end')
    expect(client.stats().pool).toMatchObject({ size: 0, free: 0 })

    expect(await (await fetch(`${url}/three`)).text()).toBe('ok')
    const stats = client.stats()
    expect(stats).toMatchObject({ requests: 3, connectionsOpened: 2, hits: 1, misses: 2, errors: 0, retries: 0 })
    expect(sockets.length).toBe(2)
    expect(exchanges.map((exchange) => exchange.error)).toEqual([null, null, null])
    expect(exchanges.map((exchange) => exchange.reusedSocket)).toEqual([false, true, false])
  })

  test('a streamed body without content-length goes out chunked and arrives intact, large chunks included', async () => {
    const received: { headers: IncomingMessage['headers'], body: Buffer | null }[] = []
    const upstream = createServer(async (request, response) => {
      received.push({ headers: request.headers, body: await readBody(request) })
      response.end('{}')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    // Chunks of many sizes (below, at and above the socket's 16 KiB high-water mark), an empty one
    // (skipped: a zero-size chunk would end the body early) and bytes that look like framing.
    const parts = [Buffer.from('{"messages":['), Buffer.alloc(100, 'a'), Buffer.alloc(0), Buffer.alloc(16 * 1024, 'b'),
      Buffer.alloc(64 * 1024, 'c'), Buffer.from([0, 1, 2, 0x0d, 0x0a, 0xff]), Buffer.alloc(200 * 1024, 'd'), Buffer.from(']}')]
    const expected = Buffer.concat(parts)
    async function * generate (): AsyncGenerator<Buffer> {
      for (const part of parts) {
        yield part
        await sleep(1)
      }
    }
    const { url, exchanges } = await front(client, (request) => ({
      method: 'POST', path: request.url as string, headers: ['content-type', 'application/json'], body: generate(),
    }))
    for (let i = 0; i < 2; i++) { // the second one rides the same socket: the framing ended cleanly
      const response = await fetch(`${url}/v1/messages`, { method: 'POST' })
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('{}')
    }
    expect(exchanges.map((exchange) => exchange.error)).toEqual([null, null])
    expect(received.length).toBe(2)
    for (const { headers, body } of received) {
      expect(headers['transfer-encoding']).toBe('chunked')
      expect(headers['content-length']).toBeUndefined()
      expect(body?.equals(expected)).toBe(true)
    }
    expect(client.stats()).toMatchObject({ connectionsOpened: 1, hits: 1 })
  })

  test('a chunked body streamed to an upstream that reads slowly keeps its framing under socket back-pressure', async () => {
    const received: (Buffer | null)[] = []
    const upstream = createServer(async (request, response) => {
      // Read nothing for a while: the kernel buffers fill and socket writes start reporting back-pressure.
      request.pause()
      await sleep(300)
      request.resume()
      received.push(await readBody(request))
      response.end('{}')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const chunk = Buffer.alloc(64 * 1024)
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251
    const count = 256 // 16 MiB, far more than loopback socket buffers hold
    async function * generate (): AsyncGenerator<Buffer> {
      for (let i = 0; i < count; i++) yield chunk
    }
    const { url, exchanges } = await front(client, (request) => ({
      method: 'POST', path: request.url as string, headers: ['content-type', 'application/octet-stream'], body: generate(),
    }))
    const response = await fetch(`${url}/v1/files`, { method: 'POST' })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('{}')
    expect(exchanges[0]?.error).toBeNull()
    expect(received[0]?.length).toBe(count * chunk.length)
    expect(received[0]?.equals(Buffer.concat(Array.from({ length: count }, () => chunk)))).toBe(true)
  })

  test('a slow upload longer than the headers timeout is not cut while it is still moving (the timeout counts from its last progress)', async () => {
    const upstream = createServer(async (request, response) => {
      const body = await readBody(request)
      response.end(String(body?.length ?? -1))
    })
    const origin = await listen(upstream)
    const client = wireClient(origin, { headersTimeoutMs: 300 })
    async function * trickle (): AsyncGenerator<Buffer> {
      for (let i = 0; i < 10; i++) {
        await sleep(100)
        yield Buffer.alloc(1000, 'u')
      }
    }
    const { url, exchanges } = await front(client, (request) => ({
      method: 'POST', path: request.url as string, headers: ['content-type', 'application/octet-stream'], body: trickle(),
    }))
    // About 1 s of upload against a 300 ms headers timeout.
    const response = await fetch(`${url}/v1/files`, { method: 'POST' })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('10000')
    expect(exchanges[0]?.error).toBeNull()
    expect(client.stats().timeouts.headers).toBe(0)
  })

  test('a Readable body with a content-length header is sent as is (no chunked framing) and arrives intact', async () => {
    const received: { headers: IncomingMessage['headers'], body: Buffer | null }[] = []
    const upstream = createServer(async (request, response) => {
      received.push({ headers: request.headers, body: await readBody(request) })
      response.end('{}')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const parts = [Buffer.alloc(10, 'x'), Buffer.alloc(70 * 1024, 'y'), Buffer.from('end')]
    const expected = Buffer.concat(parts)
    const { url, exchanges } = await front(client, (request) => ({
      method: 'POST', path: request.url as string,
      headers: ['content-type', 'application/octet-stream', 'content-length', String(expected.length)],
      body: Readable.from(parts),
    }))
    const response = await fetch(`${url}/v1/files`, { method: 'POST' })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('{}')
    expect(exchanges[0]?.error).toBeNull()
    expect(received[0]?.headers['content-length']).toBe(String(expected.length))
    expect(received[0]?.headers['transfer-encoding']).toBeUndefined()
    expect(received[0]?.body?.equals(expected)).toBe(true)
  })

  test('a chunked response of several chunks arrives byte-exact (de-chunked, then re-framed by the front)', async () => {
    const parts = [Buffer.from('event: a\ndata: 1\n\n'), Buffer.from([0x30, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0xff]), Buffer.alloc(40_000, 'z'), Buffer.from('tail')]
    const upstream = createServer(async (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' }) // no content-length: node:http chunks it
      for (const part of parts) {
        response.write(part)
        await sleep(10)
      }
      response.end()
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const { url, exchanges } = await front(client)
    const response = await fetch(`${url}/v1/files/x/content`)
    expect(response.status).toBe(200)
    expect(Buffer.from(await response.arrayBuffer()).equals(Buffer.concat(parts))).toBe(true)
    expect(exchanges[0]?.error).toBeNull()
    expect(exchanges[0]?.bytesOut).toBe(Buffer.concat(parts).length)
    // The chunked response ended cleanly: the socket is reused.
    await (await fetch(`${url}/again`)).arrayBuffer()
    expect(client.stats()).toMatchObject({ connectionsOpened: 1, hits: 1, errors: 0 })
  })

  test('a close-delimited response (no length, no chunking) arrives complete when the upstream closes', async () => {
    const raw = await rawUpstream((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nhello, ')
      setTimeout(() => { socket.end('close-delimited world') }, 30)
    })
    const client = wireClient(raw.origin)
    const { url, exchanges } = await front(client)
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${url}/v1/complete`)
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('hello, close-delimited world')
    }
    expect(exchanges.map((exchange) => exchange.error)).toEqual([null, null])
    // Such a connection cannot carry another request.
    expect(raw.connections.length).toBe(2)
    expect(client.stats()).toMatchObject({ connectionsOpened: 2, hits: 0, errors: 0 })
  })

  test('a pooled connection lets go of the exchange it was opened for: the first request\'s body is collected while the connection idles', async () => {
    const upstream = createServer((request, response) => {
      request.resume()
      request.on('end', () => response.end('ok'))
    })
    const client = wireClient(await listen(upstream))
    const bodies: WeakRef<Buffer>[] = []
    const { url, exchanges } = await front(client, (request) => {
      const body = Buffer.alloc(64 * 1024, 'a')
      bodies.push(new WeakRef(body))
      return { method: 'POST', path: request.url as string, headers: ['content-length', String(body.length)], body }
    })
    expect(await (await fetch(`${url}/v1/messages`, { method: 'POST' })).text()).toBe('ok')
    expect(exchanges[0]?.error).toBeNull()
    await waitFor(() => client.stats().pool.free === 1, 'the connection to idle in the pool')
    expect(await collectedByGc(bodies[0] as WeakRef<Buffer>)).toBe(true)
    expect(client.stats().pool.free).toBe(1)
  })

  test('a streaming response does not hold its request body: the body is collected while the stream is still open', async () => {
    const held: ServerResponse[] = []
    const upstream = createServer((request, response) => {
      request.resume()
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'text/event-stream' })
        response.write('event: ping\ndata: {"type": "ping"}\n\n')
        held.push(response)
      })
    })
    const client = wireClient(await listen(upstream))
    const bodies: WeakRef<Buffer>[] = []
    const { url } = await front(client, (request) => {
      const body = Buffer.alloc(64 * 1024, 'a')
      bodies.push(new WeakRef(body))
      return { method: 'POST', path: request.url as string, headers: ['content-length', String(body.length)], body }
    })
    const response = await fetch(`${url}/v1/messages`, { method: 'POST' })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    expect(Buffer.from((await reader.read()).value ?? []).toString()).toContain('event: ping')
    expect(await collectedByGc(bodies[0] as WeakRef<Buffer>)).toBe(true)
    expect(client.stats().pool.running).toBe(1)
    held[0]?.end('event: message_stop\ndata: {"type": "message_stop"}\n\n')
    let rest = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      rest += Buffer.from(value).toString()
    }
    expect(rest).toContain('message_stop')
  })

  test('a HEAD response has headers and no body, and its socket is reused for the next request', async () => {
    const upstream = createServer((request, response) => {
      // The length of the body a GET would have: the parser must not wait for it after HEAD.
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' })
      response.end(request.method === 'HEAD' ? undefined : 'hello world')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin, { bodyTimeoutMs: 5_000 })
    const { url, exchanges } = await front(client)
    const head = await fetch(`${url}/v1/models`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe('11')
    expect(await head.text()).toBe('')
    expect(exchanges[0]?.error).toBeNull()
    expect(exchanges[0]?.bytesOut).toBe(0)
    const get = await fetch(`${url}/v1/models`)
    expect(await get.text()).toBe('hello world')
    expect(exchanges[1]?.error).toBeNull()
    expect(exchanges[1]?.reusedSocket).toBe(true)
    expect(client.stats()).toMatchObject({ connectionsOpened: 1, hits: 1, errors: 0 })
  })

  test('a 103 Early Hints interim response is skipped and the final response is forwarded', async () => {
    const raw = await rawUpstream((socket) => {
      socket.write('HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n')
      setTimeout(() => {
        // A second interim response and the final one in the same packet.
        socket.write('HTTP/1.1 103 Early Hints\r\nlink: </app.js>; rel=preload\r\n\r\n' +
          'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-final: yes\r\ncontent-length: 5\r\n\r\nfinal')
      }, 30)
    })
    const client = wireClient(raw.origin)
    const { url, exchanges } = await front(client)
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${url}/v1/messages`)
      expect(response.status).toBe(200)
      expect(response.headers.get('x-final')).toBe('yes')
      expect(response.headers.get('link')).toBeNull()
      expect(await response.text()).toBe('final')
    }
    expect(exchanges.map((exchange) => [exchange.statusCode, exchange.error])).toEqual([[200, null], [200, null]])
    // The connection stayed in step: the second request rode it.
    expect(raw.connections.length).toBe(1)
    expect(client.stats()).toMatchObject({ connectionsOpened: 1, hits: 1, errors: 0 })
  })

  test('a malformed upstream response fails the exchange (APT_ADAPTER_UPSTREAM_RESET) and its socket is not reused', async () => {
    const raw = await rawUpstream((socket, line) => {
      if (line.startsWith('GET /bad ')) socket.write('HTTP/1.1 abc\r\n\r\n')
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
    const client = wireClient(raw.origin)
    const { url, exchanges } = await front(client)
    const bad = await fetch(`${url}/bad`)
    expect(bad.status).toBe(502)
    expect(await bad.text()).toBe('APT_ADAPTER_UPSTREAM_RESET')
    expect(exchanges[0]?.error?.name).toBe('AdapterError')
    expect(exchanges[0]?.error?.code).toBe('APT_ADAPTER_UPSTREAM_RESET')
    const good = await fetch(`${url}/good`)
    expect(await good.text()).toBe('ok')
    expect(exchanges[1]?.reusedSocket).toBe(false)
    expect(raw.connections.length).toBe(2)
    expect(raw.requests).toEqual([{ line: 'GET /bad HTTP/1.1', connection: 0 }, { line: 'GET /good HTTP/1.1', connection: 1 }])
    expect(client.stats()).toMatchObject({ connectionsOpened: 2, hits: 0, errors: 1, retries: 0 })
  })

  test('a malformed response on a reused socket is not replayed: the upstream answered, so the request is not sent twice', async () => {
    const raw = await rawUpstream((socket, line) => {
      if (line.startsWith('GET /bad ')) socket.write('HTTP/1.1 abc\r\n\r\n')
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
    const client = wireClient(raw.origin)
    const { url, exchanges } = await front(client)
    expect(await (await fetch(`${url}/good`)).text()).toBe('ok')
    const bad = await fetch(`${url}/bad`)
    expect(await bad.text()).toBe('APT_ADAPTER_UPSTREAM_RESET')
    expect(raw.requests.filter((request) => request.line.startsWith('GET /bad ')).length).toBe(1)
    expect(exchanges[1]?.retried).toBe(false)
    expect(exchanges[1]?.reusedSocket).toBe(true)
    expect(client.stats()).toMatchObject({ errors: 1, retries: 0 })
  })

  test('with maxConnections 1, concurrent requests queue (visible in stats().pool) and all run on one connection', async () => {
    const { client, url, exchanges, held, paths, first } = await oneConnectionHoldingFirst()
    const second = fetch(`${url}/second`).then(async (response) => response.text())
    const third = fetch(`${url}/third`).then(async (response) => response.text())
    await waitFor(() => client.stats().pool.queued === 2, 'stats().pool.queued to report 2 waiting requests')
    const waiting = client.stats()
    expect(waiting.pool).toMatchObject({ size: 1, connected: 1, free: 0, queued: 2, pending: 2 })
    expect(waiting.inFlight).toBe(3)
    expect(paths).toEqual(['/first'])
    held[0]?.end('done /first')
    expect(await Promise.all([first, second, third])).toEqual(['done /first', 'done /second', 'done /third'])
    expect(paths).toEqual(['/first', '/second', '/third'])
    expect(exchanges.map((exchange) => exchange.error)).toEqual([null, null, null])
    const stats = client.stats()
    expect(stats).toMatchObject({ requests: 3, connectionsOpened: 1, hits: 2, misses: 1, errors: 0 })
    expect(stats.pool).toMatchObject({ size: 1, free: 1, queued: 0 })
  })

  test('close() resolves only after an in-flight response has finished', async () => {
    const held: ServerResponse[] = []
    const upstream = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' })
      response.write('first half, ')
      held.push(response)
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const { url, exchanges } = await front(client)
    const response = await fetch(`${url}/v1/messages`)
    expect(response.status).toBe(200)
    const text = response.text()
    let closed = false
    const closing = client.close().then(() => { closed = true })
    await sleep(300)
    expect(closed).toBe(false)
    expect(exchanges).toEqual([])
    held[0]?.end('second half')
    await closing
    expect(await text).toBe('first half, second half')
    expect(exchanges[0]?.error).toBeNull()
    expect(client.stats().pool.size).toBe(0)
  })

  test('close() lets requests still queued for a connection run before it resolves', async () => {
    const { client, url, exchanges, held, first } = await oneConnectionHoldingFirst()
    const second = fetch(`${url}/second`).then(async (response) => response.text())
    await waitFor(() => client.stats().pool.queued === 1, 'stats().pool.queued to report the waiting request')
    let closed = false
    const closing = client.close().then(() => { closed = true })
    await sleep(100)
    expect(closed).toBe(false)
    held[0]?.end('done /first')
    // The queued request must not be dropped unanswered when its slot opens during close().
    expect(await within(Promise.all([first, second]), 'both responses')).toEqual(['done /first', 'done /second'])
    await within(closing, 'close() to resolve')
    expect(exchanges.map((exchange) => exchange.error)).toEqual([null, null])
    expect(client.inFlight).toBe(0)
    expect(client.stats().pool.size).toBe(0)
  })

  test('destroy() fails an in-flight exchange at once (APT_ADAPTER_CLOSED) and closes its upstream socket', async () => {
    const upstreamRequests: IncomingMessage[] = []
    const upstream = createServer((request, response) => {
      upstreamRequests.push(request)
      response.writeHead(200, { 'content-type': 'text/plain' })
      response.write('never finished') // and never ended
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const { url, exchanges } = await front(client)
    const response = await fetch(`${url}/v1/messages`)
    expect(response.status).toBe(200)
    const upstreamClosed = once(upstreamRequests[0]?.socket as Socket, 'close')
    await client.destroy()
    expect(exchanges.length).toBe(1)
    expect(exchanges[0]?.error?.code).toBe('APT_ADAPTER_CLOSED')
    await expect(response.text()).rejects.toThrow()
    await upstreamClosed
    expect(client.inFlight).toBe(0)
    expect(client.stats().pool.size).toBe(0)
  })

  test('repeated request headers reach the upstream as separate lines, with host set to the origin host', async () => {
    const seen: string[][] = []
    const upstream = createServer((request, response) => {
      seen.push(request.rawHeaders)
      response.end('{}')
    })
    const origin = await listen(upstream)
    const client = wireClient(origin)
    const { url, exchanges } = await front(client, (request) => ({
      method: 'GET', path: request.url as string, body: null,
      headers: ['anthropic-beta', 'a', 'anthropic-beta', 'b', 'x-api-key', 'k'],
    }))
    expect(await (await fetch(`${url}/v1/models`)).text()).toBe('{}')
    expect(exchanges[0]?.error).toBeNull()
    const raw = seen[0] as string[]
    const pairs: [string, string][] = []
    for (let i = 0; i < raw.length; i += 2) pairs.push([(raw[i] as string).toLowerCase(), raw[i + 1] as string])
    expect(pairs.filter(([name]) => name === 'anthropic-beta')).toEqual([['anthropic-beta', 'a'], ['anthropic-beta', 'b']])
    expect(pairs.filter(([name]) => name === 'host')).toEqual([['host', new URL(origin).host]])
    expect(pairs.filter(([name]) => name === 'x-api-key')).toEqual([['x-api-key', 'k']])
  })

  test('bytes an upstream sends on an idle pooled connection drop that connection; the next request opens a fresh one', async () => {
    const upstream = await rawUpstream((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      // Unsolicited, after the response: a connection that does this cannot be trusted again.
      setTimeout(() => socket.write('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n'), 30)
    })
    const { url } = await front(wireClient(upstream.origin))
    expect(await (await fetch(`${url}/first`)).text()).toBe('ok')
    await waitFor(() => upstream.connections[0]?.destroyed === true || upstream.connections[0]?.readableEnded === true, 'the idle connection to be dropped')
    expect(await (await fetch(`${url}/second`)).text()).toBe('ok')
    expect(upstream.requests.map((request) => request.connection)).toEqual([0, 1])
  })

  test('over TLS (llhttp reading the TLS stream itself): a 4 MB chunked body arrives intact, and the connection is reused', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024)
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 12)) & 0xff
    const sockets = new Set<unknown>()
    const { origin, cert } = await listenTls((request, response) => {
      sockets.add(request.socket)
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      for (let at = 0; at < body.length; at += 100_000) response.write(body.subarray(at, at + 100_000))
      response.end()
    })
    const client = wireClient(origin, { tlsCa: cert })
    const { url } = await front(client)
    for (let i = 0; i < 2; i++) {
      const received = Buffer.from(await (await fetch(`${url}/v1/files/f/content`)).arrayBuffer())
      expect(received.equals(body)).toBe(true)
    }
    expect(sockets.size).toBe(1)
  })

  test('over TLS, a client that does not read holds the upstream back (the TLS handle stops reading), and then gets every byte', async () => {
    const chunk = Buffer.alloc(64 * 1024)
    const chunks = 768 // 48 MB
    let written = 0
    let blocked = false
    const { origin, cert } = await listenTls((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      let sent = 0
      const pump = (): void => {
        while (sent < chunks) {
          chunk.writeUInt32BE(sent, 0)
          sent++
          written += chunk.length
          if (!response.write(Buffer.from(chunk))) {
            blocked = true
            response.once('drain', pump)
            return
          }
        }
        response.end()
      }
      pump()
    })
    const { url } = await front(wireClient(origin, { tlsCa: cert }))
    const response = await fetch(`${url}/v1/files/f/content`)
    // Nobody reads: the upstream's writes must come to a standstill well short of the whole body
    // (TLS is slower than plain TCP, so wait for the standstill rather than a fixed time).
    let before = -1
    for (let waited = 0; waited < 5_000 && written !== before; waited += 300) {
      before = written
      await sleep(300)
    }
    expect(blocked).toBe(true)
    expect(written).toBe(before)
    expect(written).toBeLessThan(32 * 1024 * 1024)
    const received = Buffer.from(await response.arrayBuffer())
    expect(received.length).toBe(chunks * chunk.length)
    for (let i = 0; i < chunks; i++) expect(received.readUInt32BE(i * chunk.length)).toBe(i)
  })

  test('an observer that throws in the middle of a body fails only its exchange; the next request is served on a fresh connection', async () => {
    const upstream = await rawUpstream((socket, line) => {
      if (line.includes('/throw')) {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n')
        setTimeout(() => socket.write('6\r\nsecond\r\n0\r\n\r\n'), 30)
      } else {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      }
    })
    const client = wireClient(upstream.origin)
    const failed: Exchange[] = []
    const server = createServer((request, response) => {
      let chunks = 0
      // A response tap that breaks on the second chunk, inside llhttp's body callback.
      const onResponseStart = (): { data (): void } => ({
        data () {
          if (++chunks === 2) throw new Error('tap failed')
        },
      })
      client.forward({ method: 'GET', path: request.url as string, headers: [], body: null }, response, (exchange) => {
        if (exchange.error !== null) failed.push(exchange)
        if (!response.writableEnded) response.destroy()
      }, request.url === '/throw' ? { onResponseStart } : {})
    })
    const url = await listen(server)
    expect(await fetch(`${url}/throw`).then((response) => response.text()).catch(() => 'cut')).not.toBe('firstsecond')
    await waitFor(() => failed.length === 1, 'the throwing exchange to fail')
    expect(await (await fetch(`${url}/after`)).text()).toBe('ok')
    expect(upstream.requests.map((request) => request.connection)).toEqual([0, 1])
  })
})
