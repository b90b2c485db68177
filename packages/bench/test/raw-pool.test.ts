import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeRequest, type RawHandler, RawPool } from '../src/raw-pool.js'

const servers: Server[] = []

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    server.close()
  }
})

async function serve(handler: (request: IncomingMessage, response: ServerResponse, body: string) => void): Promise<{ url: string, connections: () => number }> {
  let connections = 0
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => { body += chunk })
    request.on('end', () => handler(request, response, body))
  })
  server.on('connection', () => { connections++ })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections }
}

interface Outcome { status: number, body: string, error: string | null }

/** A handler that resolves with what it saw. */
function collect(): RawHandler & { done: Promise<Outcome> } {
  let status = 0
  let body = ''
  let resolve!: (outcome: Outcome) => void
  const done = new Promise<Outcome>((r) => { resolve = r })
  return {
    done,
    onHeaders: (code: number) => { status = code },
    onData: (chunk: Buffer) => { body += chunk.toString() },
    onComplete: () => resolve({ status, body, error: null }),
    onError: (error: Error) => resolve({ status, body, error: error.message }),
  }
}

const REQUEST = { method: 'POST' as const, path: '/v1/messages?x=1', headers: ['x-api-key', 'k', 'content-type', 'application/json'], body: Buffer.from('{"a":1}') }

describe('RawPool, the load generator\'s client', () => {
  it('encodes the request once, with host and content-length', () => {
    const bytes = encodeRequest(new URL('http://127.0.0.1:8080'), REQUEST).toString()
    expect(bytes).toBe('POST /v1/messages?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-api-key: k\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}')
  })

  it('sends the request and reads content-length and chunked bodies over one keep-alive connection', async () => {
    let seen = ''
    const server = await serve((request, response, body) => {
      seen = `${request.method} ${request.url} ${request.headers['x-api-key']} ${body}`
      if (request.headers['x-chunked'] === undefined) response.end('plain')
      else {
        response.write('one,')
        response.end('two')
      }
    })
    const pool = new RawPool(server.url, REQUEST, { connections: 1 })
    const first = collect()
    pool.dispatch(first)
    expect(await first.done).toEqual({ status: 200, body: 'plain', error: null })
    expect(seen).toBe('POST /v1/messages?x=1 k {"a":1}')
    const second = collect()
    pool.dispatch(second)
    expect(await second.done).toEqual({ status: 200, body: 'plain', error: null })
    expect(server.connections()).toBe(1)
    await pool.close()

    const chunked = new RawPool(server.url, { ...REQUEST, headers: [...REQUEST.headers, 'x-chunked', '1'] }, { connections: 1 })
    const third = collect()
    chunked.dispatch(third)
    expect(await third.done).toEqual({ status: 200, body: 'one,two', error: null })
    await chunked.close()
  })

  it('opens a new connection after a response that closes its own', async () => {
    const server = await serve((_request, response) => {
      response.setHeader('connection', 'close')
      response.end('bye')
    })
    const pool = new RawPool(server.url, REQUEST, { connections: 1 })
    for (let i = 0; i < 3; i++) {
      const handler = collect()
      pool.dispatch(handler)
      expect(await handler.done).toEqual({ status: 200, body: 'bye', error: null })
    }
    expect(server.connections()).toBe(3)
    await pool.close()
  })

  it('holds dispatches beyond its connection limit until a connection is free', async () => {
    const waiting: ServerResponse[] = []
    const server = await serve((_request, response) => { waiting.push(response) })
    const pool = new RawPool(server.url, REQUEST, { connections: 2 })
    const handlers = [collect(), collect(), collect()]
    for (const handler of handlers) pool.dispatch(handler)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(waiting).toHaveLength(2)
    waiting[0]?.end('a')
    expect((await handlers[0]?.done)?.body).toBe('a')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(waiting).toHaveLength(3)
    waiting[1]?.end('b')
    waiting[2]?.end('c')
    expect((await handlers[2]?.done)?.body).toBe('c')
    expect(server.connections()).toBe(2)
    await pool.close()
  })

  it('reports a refused connection, a connection closed mid-response and bytes that are not HTTP as errors', async () => {
    const refused = new RawPool('http://127.0.0.1:1', REQUEST, { connections: 1 })
    const first = collect()
    refused.dispatch(first)
    expect((await first.done).error).toMatch(/ECONNREFUSED/)

    const server = await serve((request, response) => {
      if (request.url?.includes('garbage')) {
        request.socket.end('NOT HTTP\r\n\r\n')
        return
      }
      response.writeHead(200, { 'content-length': '100' })
      response.write('partial')
      setTimeout(() => request.socket.destroy(), 20)
    })
    const cut = new RawPool(server.url, REQUEST, { connections: 1 })
    const second = collect()
    cut.dispatch(second)
    const outcome = await second.done
    expect(outcome.status).toBe(200)
    expect(outcome.body).toBe('partial')
    expect(outcome.error).not.toBeNull()
    const garbage = new RawPool(server.url, { ...REQUEST, path: '/garbage' }, { connections: 1 })
    const third = collect()
    garbage.dispatch(third)
    expect((await third.done).error).toMatch(/invalid response/)
  })

  it('reads every connection into one shared buffer without mixing their bodies, and bodies larger than it', async () => {
    // Each connection's response comes in many small writes, interleaved with the others', so
    // consecutive reads into the shared buffer belong to different connections; one body is
    // larger than the buffer (64 KiB), so it takes several reads.
    const server = await serve((request, response) => {
      const id = request.headers['x-id'] as string
      if (id === 'large') {
        response.end(`${'L'.repeat(200_000)}end`)
        return
      }
      let left = 40
      const next = (): void => {
        if (--left === 0) response.end(`${id}.`)
        else {
          response.write(`${id}:${left},`)
          setImmediate(next)
        }
      }
      next()
    })
    const outcomes: Array<Promise<Outcome>> = []
    const pools: RawPool[] = []
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'large']) {
      const pool = new RawPool(server.url, { ...REQUEST, headers: [...REQUEST.headers, 'x-id', id] }, { connections: 1 })
      pools.push(pool)
      const handler = collect()
      pool.dispatch(handler)
      outcomes.push(handler.done)
    }
    const results = await Promise.all(outcomes)
    for (const [index, id] of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].entries()) {
      let expected = ''
      for (let left = 39; left > 0; left--) expected += `${id}:${left},`
      expect(results[index]).toEqual({ status: 200, body: `${expected}${id}.`, error: null })
    }
    expect(results[8]).toEqual({ status: 200, body: `${'L'.repeat(200_000)}end`, error: null })
    await Promise.all(pools.map((pool) => pool.close()))
  })

  it('destroy() fails what is in flight and what waits; close() lets a response finish', async () => {
    const waiting: ServerResponse[] = []
    const server = await serve((_request, response) => { waiting.push(response) })
    const pool = new RawPool(server.url, REQUEST, { connections: 1 })
    const inFlight = collect()
    const queued = collect()
    pool.dispatch(inFlight)
    pool.dispatch(queued)
    await new Promise((resolve) => setTimeout(resolve, 30))
    await pool.destroy(new Error('window closed'))
    expect((await inFlight.done).error).toBe('window closed')
    expect((await queued.done).error).toBe('window closed')
    const late = collect()
    pool.dispatch(late)
    expect((await late.done).error).toBe('window closed')

    const gentle = new RawPool(server.url, REQUEST, { connections: 1 })
    const last = collect()
    gentle.dispatch(last)
    await new Promise((resolve) => setTimeout(resolve, 30))
    const closed = gentle.close()
    waiting.at(-1)?.end('finished')
    expect(await last.done).toEqual({ status: 200, body: 'finished', error: null })
    await closed
  })
})
