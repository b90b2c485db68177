import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { createSecureServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import * as adapter from '@apt/adapter'
import { createUpstreamClient as create, type Exchange, type UpstreamClient, type UpstreamClientOptions } from '@apt/adapter'

/** The vitest project "undici-engine" runs this file again with APT_TEST_ENGINE=undici. */
const engine = (process.env.APT_TEST_ENGINE ?? 'wire') as 'wire' | 'undici'
/** The vitest project "wire-stream-reads" runs it with APT_TEST_WIRE_CONSUME=false. */
const createUpstreamClient = (options: UpstreamClientOptions): UpstreamClient => create({ wireConsume: process.env.APT_TEST_WIRE_CONSUME !== 'false', ...options })

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function listen (server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/**
 * An upstream that writes `next()` until it returns null, honouring back-pressure:
 * `written` counts the bytes handed to its socket, `blocked` says a write had to wait.
 */
function pumpingUpstream (contentType: string, next: () => Buffer | string | null): { server: Server, written: number, blocked: boolean } {
  const state = { server: undefined as unknown as Server, written: 0, blocked: false }
  state.server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': contentType })
    const pump = (): void => {
      for (let chunk = next(); chunk !== null; chunk = next()) {
        state.written += chunk.length
        if (!response.write(chunk)) {
          state.blocked = true
          response.once('drain', pump)
          return
        }
      }
      response.end()
    }
    pump()
  })
  return state
}

/** A front server that forwards every request through the client and reports the exchange. */
async function front (client: UpstreamClient): Promise<{ url: string, exchanges: Exchange[] }> {
  const exchanges: Exchange[] = []
  const server = createServer((request, response) => {
    client.forward({ method: request.method as string, path: request.url as string, headers: [], body: null }, response, (exchange) => {
      exchanges.push(exchange)
      if (exchange.error !== null && !exchange.headersSent && !response.headersSent) {
        response.writeHead(502)
        response.end(exchange.error.code)
      }
    })
  })
  return { url: await listen(server), exchanges }
}

describe('@apt/adapter', () => {
  test('a response the client side cannot take (head already sent) fails that exchange only: the process and the pool carry on', async () => {
    const origin = await listen(createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end('{"ok":true}')
    }))
    const client = createUpstreamClient({ origin, engine })
    cleanups.push(() => client.close())
    const exchanges: Exchange[] = []
    const server = createServer((request, response) => {
      // This front answers before the upstream does, so writing the upstream's head must fail.
      if (request.url === '/early') {
        response.writeHead(202, { 'content-type': 'text/plain' })
        response.flushHeaders()
      }
      client.forward({ method: 'GET', path: '/', headers: [], body: null }, response, (exchange) => {
        exchanges.push(exchange)
        if (!response.writableEnded) response.end()
      })
    })
    const url = await listen(server)
    const early = await fetch(`${url}/early`)
    expect(early.status).toBe(202)
    // Its head was already out, so the failed exchange cuts that response (a visible truncation).
    await early.text().catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(exchanges).toHaveLength(1)
    expect(exchanges[0]?.error).not.toBeNull()
    // The same client still serves the next request normally.
    const normal = await fetch(`${url}/normal`)
    expect(normal.status).toBe(200)
    expect(await normal.json()).toEqual({ ok: true })
    expect(exchanges[1]?.error).toBeNull()
  })

  test('public API (sorted export names)', () => {
    expect(Object.keys(adapter).sort()).toEqual([
      'AdapterError', 'RequestHead', 'copyResponseHeaders', 'createUpstreamClient', 'prepareRequestHead', 'prepareRequestHeaders', 'resolveOptions',
    ])
  })

  test('warm-up opens the requested connections; requests then reuse them (hits, no new sockets)', async () => {
    const sockets = new Set<Socket>()
    const upstream = createServer((request, response) => { sockets.add(request.socket); response.end('{}') })
    const origin = await listen(upstream)
    const client = createUpstreamClient({ origin, engine, warmupConnections: 3 })
    cleanups.push(() => client.close())
    expect(await client.warmUp()).toEqual({ requested: 3, opened: 3, failed: 0 })
    expect(client.stats().connectionsOpened).toBe(3)
    expect(client.stats().pool.connected).toBe(3)
    const { url } = await front(client)
    for (let i = 0; i < 5; i++) await (await fetch(`${url}/v1/models`)).text()
    const stats = client.stats()
    expect(stats.connectionsOpened).toBe(3)
    expect(stats.hits).toBe(5)
    expect(stats.misses).toBe(0)
    expect(stats.requests).toBe(5)
    expect(sockets.size).toBe(3)
  })

  test('close() waits for a running stream to finish, then refuses new work', async () => {
    const upstream = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      let n = 0
      const timer = setInterval(() => { response.write(`data: ${n}\n\n`); if (++n === 5) { clearInterval(timer); response.end() } }, 30)
    })
    const origin = await listen(upstream)
    const client = createUpstreamClient({ origin, engine })
    const { url, exchanges } = await front(client)
    const pending = fetch(`${url}/v1/messages`).then(async (response) => response.text())
    while (client.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await client.close()
    expect(await pending).toBe('data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n')
    expect(exchanges[0]?.error).toBeNull()
    const refused = await fetch(`${url}/v1/messages`)
    expect(refused.status).toBe(502)
    expect(await refused.text()).toBe('APT_ADAPTER_CLOSED')
  })

  test('a response whose last chunk met back-pressure leaves its upstream connection usable for the next request', async () => {
    const body = Buffer.alloc(200_000, 'y')
    const origin = await listen(createServer((request, response) => {
      const small = request.url === '/small'
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': small ? 2 : body.length })
      response.end(small ? 'ok' : body)
    }))
    const client = createUpstreamClient({ origin, engine, maxConnections: 1, directWrite: false })
    cleanups.push(() => client.destroy())
    const url = await listen(createServer((request, response) => {
      // Every write reports a full client socket, the last one included; 'drain' follows a moment later.
      const write = response.write.bind(response) as (chunk: Buffer) => boolean
      response.write = ((chunk: Buffer) => {
        write(chunk)
        setTimeout(() => response.emit('drain'), 1)
        return false
      }) as typeof response.write
      client.forward({ method: 'GET', path: request.url as string, headers: [], body: null }, response, () => {})
    }))
    const big = await fetch(`${url}/big`)
    expect((await big.arrayBuffer()).byteLength).toBe(body.length)
    // Same single upstream connection: it must not have been pooled while still paused.
    const small = await fetch(`${url}/small`, { signal: AbortSignal.timeout(5_000) })
    expect(await small.text()).toBe('ok')
    expect(client.stats().connectionsOpened).toBe(1)
  })

  test('back-pressure: a client that does not read pauses the upstream instead of buffering', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x')
    let sent = 0
    const upstream = pumpingUpstream('application/octet-stream', () => (sent++ < 4096 ? chunk : null))
    const origin = await listen(upstream.server)
    const client = createUpstreamClient({ origin, engine })
    cleanups.push(() => client.destroy())
    const { url } = await front(client)
    const response = await fetch(`${url}/v1/files/big/content`)
    await new Promise((resolve) => setTimeout(resolve, 400))
    // Nobody reads: the upstream must be held back long before 256 MB, with only socket buffers in between.
    expect(upstream.blocked).toBe(true)
    expect(upstream.written).toBeLessThan(32 * 1024 * 1024)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let received = 0
    while (received < 8 * 1024 * 1024) received += (await reader.read()).value?.length ?? 0
    // Reading resumes the flow.
    expect(upstream.written).toBeGreaterThan(8 * 1024 * 1024)
    await reader.cancel()
    upstream.server.closeAllConnections()
  })

  test.each([['content-length'], ['chunked']] as const)('a large %s body to a client that reads late arrives byte for byte: queued writes keep their own bytes', async (framing) => {
    // The wire engine hands body pieces on as views of the one buffer every upstream read lands
    // in. A piece that waits in the client socket's queue must be a copy, or the next read
    // overwrites it. Here the client reads nothing at first, so once the kernel's buffers are
    // full the proxy's writes queue; the upstream sends 3 KiB a turn, so a queued piece is below
    // the socket's high-water mark and the upstream is not paused before the next read.
    const size = 24 * 1024 * 1024
    const body = Buffer.allocUnsafe(size)
    for (let i = 0; i < size; i++) body[i] = (i * 7 + (i >> 12)) & 0xff
    const origin = await listen(createServer((_request, response) => {
      response.writeHead(200, framing === 'content-length' ? { 'content-type': 'application/octet-stream', 'content-length': size } : { 'content-type': 'application/octet-stream' })
      let at = 0
      const pump = (): void => {
        if (at >= size) {
          response.end()
          return
        }
        const next = body.subarray(at, at + 3 * 1024)
        at += next.length
        if (response.write(next)) setImmediate(pump)
        else response.once('drain', pump)
      }
      pump()
    }))
    const client = createUpstreamClient({ origin, engine })
    cleanups.push(() => client.destroy())
    const { url } = await front(client)
    const response = await fetch(`${url}/v1/files/f/content`)
    await new Promise((resolve) => setTimeout(resolve, 600))
    const received = Buffer.from(await response.arrayBuffer())
    expect(received.length).toBe(size)
    expect(received.equals(body)).toBe(true)
  }, 20_000)

  test('back-pressure on a stream of small SSE events: held back, then delivered complete and in order', async () => {
    const pad = 'x'.repeat(4000)
    const total = 12_000 // about 48 MB of 4 KB events
    let sent = 0
    const upstream = pumpingUpstream('text/event-stream', () => (sent < total ? `event: content_block_delta\ndata: {"i":${sent++},"pad":"${pad}"}\n\n` : null))
    const origin = await listen(upstream.server)
    const client = createUpstreamClient({ origin, engine })
    cleanups.push(() => client.destroy())
    // Every event one upstream read delivers after the client socket filled up must not add a
    // 'drain' listener of its own (Node warns past 10 on one socket).
    const warnings: string[] = []
    const onWarning = (warning: Error): void => { warnings.push(warning.name) }
    process.on('warning', onWarning)
    cleanups.push(() => { process.off('warning', onWarning) })
    const { url } = await front(client)
    const response = await fetch(`${url}/v1/messages`, { method: 'POST', body: '{"stream":true}' })
    await new Promise((resolve) => setTimeout(resolve, 400))
    // Nobody reads: only socket buffers may lie between the upstream and the client.
    expect(upstream.blocked).toBe(true)
    expect(upstream.written).toBeLessThan(32 * 1024 * 1024)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    let next = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
      let end = text.indexOf('\n\n')
      while (end !== -1) {
        const event = text.slice(0, end)
        text = text.slice(end + 2)
        const index = Number(/"i":(\d+)/.exec(event)?.[1])
        if (index !== next || !event.endsWith(`"pad":"${pad}"}`)) throw new Error(`event ${next} arrived as ${index}`)
        next++
        end = text.indexOf('\n\n')
      }
    }
    expect(next).toBe(total)
    expect(text).toBe('')
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings.filter((name) => name === 'MaxListenersExceededWarning')).toEqual([])
  })

  test('HTTP/2 to a TLS upstream when allowH2 is set (certificate trusted through tlsCa, still verified)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-h2-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
    const cert = readFileSync(join(dir, 'cert.pem'))
    const versions: string[] = []
    const upstream = createSecureServer({ key: readFileSync(join(dir, 'key.pem')), cert, allowHTTP1: true }, (request, response) => {
      versions.push(request.httpVersion)
      response.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_h2' })
      response.write('event: ping\ndata: {"type":"ping"}\n\n')
      setTimeout(() => response.end('event: message_stop\ndata: {"type":"message_stop"}\n\n'), 20)
    })
    upstream.listen(0, '127.0.0.1')
    await once(upstream, 'listening')
    cleanups.push(() => new Promise<void>((resolve) => { upstream.close(() => resolve()) }))
    const origin = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`
    for (const allowH2 of [true, false]) {
      const client = createUpstreamClient({ origin, engine, allowH2, tlsCa: cert })
      cleanups.push(() => client.destroy())
      const { url, exchanges } = await front(client)
      const response = await fetch(`${url}/v1/messages`)
      expect(await response.text()).toBe('event: ping\ndata: {"type":"ping"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
      expect(exchanges[0]?.upstreamRequestId).toBe('req_h2')
      expect(exchanges[0]?.isEventStream).toBe(true)
    }
    expect(versions).toEqual(['2.0', '1.1'])
  })

  test('TLS is verified: a self-signed upstream certificate is refused (APT_ADAPTER_CONNECT_FAILED)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-tls-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
    let reached = 0
    const upstream = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_request, response) => { reached++; response.end('{}') })
    upstream.listen(0, '127.0.0.1')
    await once(upstream, 'listening')
    cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())))
    const client = createUpstreamClient({ engine, origin: `https://127.0.0.1:${(upstream.address() as AddressInfo).port}` })
    cleanups.push(() => client.close())
    const { url, exchanges } = await front(client)
    const response = await fetch(`${url}/v1/messages`)
    expect(response.status).toBe(502)
    expect(await response.text()).toBe('APT_ADAPTER_CONNECT_FAILED')
    expect(reached).toBe(0)
    expect((exchanges[0]?.error?.cause as { code?: string } | undefined)?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/)
  })
})
