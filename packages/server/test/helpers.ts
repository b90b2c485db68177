import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { buildServer, type ServerOptions } from '@apt/server'
import type { FastifyInstance } from 'fastify'

export interface RunningProxy {
  app: FastifyInstance
  url: string
  /** Every log line the proxy wrote, as text. */
  logs: string[]
  close (): Promise<void>
}

/** Build the proxy in front of `origin` and listen on a real loopback port. */
const TEST_ENGINE = (process.env.APT_TEST_ENGINE ?? 'wire') as 'wire' | 'undici'
/** The vitest project "wire-stream-reads" sets APT_TEST_WIRE_CONSUME=false. */
const TEST_WIRE_CONSUME = process.env.APT_TEST_WIRE_CONSUME !== 'false'
/** The vitest project "node-http-front" sets APT_TEST_FRONT=false: `/v1/*` then runs on node:http's request and response objects. */
export const TEST_FRONT = process.env.APT_TEST_FRONT !== 'false'

export async function startProxy (origin: string, options: Partial<ServerOptions> = {}, port = 0): Promise<RunningProxy> {
  const logs: string[] = []
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      callback()
    },
  })
  const app = buildServer({
    logger: { level: 'info' },
    logStream,
    metrics: { processMetrics: false },
    front: TEST_FRONT,
    ...options,
    // The vitest project "undici-engine" runs the proxy suites again with APT_TEST_ENGINE=undici.
    upstream: { engine: TEST_ENGINE, wireConsume: TEST_WIRE_CONSUME, ...(options.upstream ?? { origin, keepAliveTimeoutMs: 4_000 }) } as ServerOptions['upstream'],
  })
  await app.listen({ port, host: '127.0.0.1' })
  const address = app.server.address() as AddressInfo
  return { app, url: `http://127.0.0.1:${address.port}`, logs, close: () => app.close() }
}

export interface FakeUpstream {
  url: string
  server: Server
  requests: { method: string, url: string, rawHeaders: string[], body: Buffer }[]
  close (): Promise<void>
}

/** A real HTTP server on port 0 whose behaviour the test scripts. */
export async function startFakeUpstream (handler: (request: IncomingMessage, response: ServerResponse, body: Buffer) => void): Promise<FakeUpstream> {
  const requests: FakeUpstream['requests'] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      requests.push({ method: request.method as string, url: request.url as string, rawHeaders: request.rawHeaders, body })
      handler(request, response, body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export interface TimedChunk { at: number, text: string }

/** Read a response body, keeping the arrival time of each chunk. */
export async function readTimed (response: Response): Promise<{ chunks: TimedChunk[], text: string, bytes: Buffer }> {
  const start = performance.now()
  const chunks: TimedChunk[] = []
  const parts: Buffer[] = []
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    const buffer = Buffer.from(value)
    parts.push(buffer)
    chunks.push({ at: performance.now() - start, text: buffer.toString('utf8') })
  }
  const bytes = Buffer.concat(parts)
  return { chunks, text: bytes.toString('utf8'), bytes }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Parse SSE text into events (test-side only; the proxy never parses). */
export function parseSse (text: string): { event: string, data: string }[] {
  return text.split('\n\n').filter((block) => block.trim() !== '').map((block) => {
    let event = ''
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
    }
    return { event, data: data.join('\n') }
  })
}

/** A loopback port that was free a moment ago. */
export async function freePort (): Promise<number> {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

/** Write `events` to an upstream response `gapMs` apart (the first at once), then end it. */
export function writePaced (response: ServerResponse, events: readonly string[], gapMs: number): void {
  let index = 0
  const next = (): void => {
    if (index === events.length) {
      response.end()
      return
    }
    response.write(events[index++])
    setTimeout(next, gapMs)
  }
  next()
}
