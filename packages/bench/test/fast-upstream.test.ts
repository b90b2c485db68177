import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import { Client, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEmulator, createFastUpstream, type Emulator, type FastUpstream } from '../src/index.js'
import { messageRequest } from '../src/message-request.js'
import { eventually } from './eventually.js'

const HEADERS = { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }
const BODY = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
const STREAM_BODY = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: true })

let fast: FastUpstream
let full: Emulator

beforeAll(async () => {
  fast = await createFastUpstream()
  full = await createEmulator({ recordLimit: 0 })
})

afterAll(async () => {
  await fast.close()
  await full.close()
})

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await request(`${url}/v1/messages`, { method: 'POST', headers: { ...HEADERS, ...headers }, body })
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() }
}

const withoutIds = (text: string): string => text.replace(/msg_[0-9A-Za-z]{24}/g, 'msg_ID')

/** Writes raw bytes on a new connection and collects everything until the server closes it. */
async function raw(bytes: string, until: (received: string) => boolean = () => false): Promise<{ text: string, socket: Socket }> {
  const socket = connect(fast.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(bytes)
  let text = ''
  socket.setEncoding('latin1')
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: string) => {
      text += chunk
      if (until(text)) resolve()
    })
    socket.on('close', () => resolve())
  })
  return { text, socket }
}

function requestHead(body: string, extra = ''): string {
  return `POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`
}

describe('the fast upstream answers as the full emulator does', () => {
  it('sends the same message JSON and the same response headers', async () => {
    const [mine, theirs] = await Promise.all([post(fast.url, BODY), post(full.url, BODY)])
    expect(mine.status).toBe(200)
    expect(withoutIds(mine.text)).toBe(withoutIds(theirs.text))
    expect(Object.keys(mine.headers).sort()).toEqual(Object.keys(theirs.headers).sort())
    expect(mine.headers['keep-alive']).toBe(theirs.headers['keep-alive'])
    expect(mine.headers['request-id']).toMatch(/^req_[0-9A-Za-z]{24}$/)
  })

  it('sends the same SSE bytes for a stream, with any number of deltas', async () => {
    for (const deltas of ['1', '5', '17']) {
      const [mine, theirs] = await Promise.all([
        post(fast.url, STREAM_BODY, { 'x-emulator-deltas': deltas }),
        post(full.url, STREAM_BODY, { 'x-emulator-deltas': deltas }),
      ])
      expect(mine.headers['content-type']).toBe('text/event-stream; charset=utf-8')
      expect(mine.headers['transfer-encoding']).toBe('chunked')
      expect(withoutIds(mine.text)).toBe(withoutIds(theirs.text))
    }
  })

  it('serves the official SDK, plain and streamed', async () => {
    const client = new Anthropic({ apiKey: 'test-key', baseURL: fast.url, maxRetries: 0 })
    const message = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
    expect(message.type).toBe('message')
    expect(message.content[0]?.type).toBe('text')
    expect(message.usage.output_tokens).toBe(5)
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
    const types: string[] = []
    for await (const event of stream) types.push(event.type)
    expect(types[0]).toBe('message_start')
    expect(types.at(-1)).toBe('message_stop')
    expect((await stream.finalMessage()).content[0]).toEqual(message.content[0])
  })

  it('answers the bench\'s own requests, as messageRequest() builds them', async () => {
    const client = new Client(fast.url)
    try {
      for (const options of [{ stream: false }, { stream: true, deltas: 3 }]) {
        const dispatch = messageRequest(options)
        const response = await client.request({ path: dispatch.path, method: 'POST', headers: dispatch.headers as string[], body: dispatch.body as Buffer })
        expect(response.statusCode).toBe(200)
        const text = await response.body.text()
        if (options.stream) expect(text.match(/\n\n/g)).toHaveLength(3 + 6)
        else expect(JSON.parse(text).type).toBe('message')
      }
    } finally {
      await client.close()
    }
  })

  it('paces a stream: the first event at once, then one event every x-emulator-pace-ms', async () => {
    const started = performance.now()
    const response = await request(`${fast.url}/v1/messages`, { method: 'POST', headers: { ...HEADERS, 'x-emulator-pace-ms': '25', 'x-emulator-deltas': '2' }, body: STREAM_BODY })
    const arrivals: number[] = []
    let text = ''
    for await (const chunk of response.body) {
      text += String(chunk)
      arrivals.push(performance.now() - started)
    }
    const events = text.match(/\n\n/g)?.length ?? 0
    expect(events).toBe(2 + 6)
    // Timers never fire early: the whole stream takes at least (events - 1) paces.
    expect((arrivals.at(-1) as number) - (arrivals[0] as number)).toBeGreaterThanOrEqual((events - 1) * 25 - 2)
    expect(arrivals.length).toBeGreaterThanOrEqual(events)
  })
})

describe('the fast upstream speaks HTTP/1.1 correctly', () => {
  it('keeps connections alive and counts connections and requests', async () => {
    const before = fast.stats()
    const client = new Client(fast.url)
    try {
      for (let i = 0; i < 3; i++) {
        const response = await client.request({ path: '/v1/messages', method: 'POST', headers: HEADERS, body: BODY })
        await response.body.text()
      }
    } finally {
      await client.close()
    }
    const after = fast.stats()
    expect(after.connections - before.connections).toBe(1)
    expect(after.requests - before.requests).toBe(3)
  })

  it('answers pipelined requests in order, a paced stream before the plain message behind it', async () => {
    const both = requestHead(STREAM_BODY, 'x-emulator-pace-ms: 5\r\nx-emulator-deltas: 2\r\n') + requestHead(BODY)
    const { text, socket } = await raw(both, (received) => received.includes('0\r\n\r\nHTTP/1.1') && received.endsWith('"standard"}}'))
    socket.destroy()
    const end = text.indexOf('0\r\n\r\n')
    expect(end).toBeGreaterThan(0)
    expect(text.indexOf('event: message_stop')).toBeLessThan(end)
    expect(text.slice(end + 5)).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: \d+\r\n[\s\S]*"type":"message"/)
  })

  it('reads a chunked request body', async () => {
    const head = 'POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n'
    const half = STREAM_BODY.length >> 1
    const chunked = `${half.toString(16)}\r\n${STREAM_BODY.slice(0, half)}\r\n${(STREAM_BODY.length - half).toString(16)}\r\n${STREAM_BODY.slice(half)}\r\n0\r\n\r\n`
    const { text } = await raw(head + chunked)
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(text).toContain('connection: close\r\n')
    expect(text).toContain('event: message_stop')
  })

  it('closes after the response to an HTTP/1.0 request, and streams it without chunked framing', async () => {
    const { text } = await raw(requestHead(STREAM_BODY).replace('HTTP/1.1', 'HTTP/1.0'))
    expect(text).toContain('connection: close\r\n')
    expect(text).not.toContain('transfer-encoding')
    expect(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true)
  })

  it('gives Anthropic-shaped 404 and 401 errors, and a 400 with a close for bytes that are not HTTP', async () => {
    const missing = await request(`${fast.url}/v1/models`, { headers: HEADERS })
    expect(missing.statusCode).toBe(404)
    expect(await missing.body.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' }, request_id: expect.stringMatching(/^req_/) })
    const anonymous = await request(`${fast.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY })
    expect(anonymous.statusCode).toBe(401)
    expect(await anonymous.body.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
    const { text } = await raw('NOT HTTP AT ALL\r\n\r\n')
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
  })

  it('stops a paced stream whose client went away, and closes with streams open', async () => {
    const upstream = await createFastUpstream()
    const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
    const idle = timers()
    const client = connect(upstream.port, '127.0.0.1')
    await once(client, 'connect')
    client.write(requestHead(STREAM_BODY, 'x-emulator-pace-ms: 10\r\nx-emulator-deltas: 500\r\n'))
    await once(client, 'data')
    // The stream's pacing timer (and the connection's idle timer) are live while it runs...
    expect(timers()).toBeGreaterThan(idle)
    client.destroy()
    // ... and gone once its client is. (At most as many as before: other tests' timers in this
    // worker, an HTTP agent's keep-alive timer say, may end meanwhile.)
    await eventually(() => expect(timers()).toBeLessThanOrEqual(idle))
    const open = connect(upstream.port, '127.0.0.1')
    await once(open, 'connect')
    open.write(requestHead(STREAM_BODY, 'x-emulator-pace-ms: 10\r\nx-emulator-deltas: 500\r\n'))
    await once(open, 'data')
    await upstream.close()
    if (!open.closed) await once(open, 'close')
    expect(open.closed).toBe(true)
    expect(upstream.stats()).toEqual({ connections: 2, requests: 2 })
  })
})
