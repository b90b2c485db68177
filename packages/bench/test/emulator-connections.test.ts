import { Client, request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createEmulator, type Emulator } from '../src/index.js'
import { eventually } from './eventually.js'

const HEADERS = { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }
const BODY = JSON.stringify({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
const STREAM_BODY = JSON.stringify({ model: 'claude-test', max_tokens: 16, messages: [], stream: true })

const cleanups: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: Parameters<typeof createEmulator>[0] = {}): Promise<{ emulator: Emulator; client: Client }> {
  const emulator = await createEmulator(options)
  cleanups.push(() => emulator.close())
  const client = new Client(emulator.url)
  cleanups.push(() => client.close())
  return { emulator, client }
}

async function send(client: Client, headers: Record<string, string> = {}, body = BODY) {
  const response = await client.request({ method: 'POST', path: '/v1/messages', headers: { ...HEADERS, ...headers }, body })
  return { statusCode: response.statusCode, text: await response.body.text() }
}

describe('connection accounting', () => {
  it('counts connections and marks requests that reuse a keep-alive connection', async () => {
    const { emulator, client } = await start()
    await send(client)
    await send(client)
    expect(emulator.stats()).toMatchObject({ connections: 1, activeConnections: 1, requests: 2, completed: 2, aborted: 0 })
    expect(emulator.requests.map((recorded) => [recorded.connectionId, recorded.reusedConnection])).toEqual([
      [1, false],
      [1, true],
    ])
    expect(emulator.lastRequest()?.body.toString()).toBe(BODY)
    expect(emulator.lastRequest()?.rawHeaders).toContain('x-api-key')

    const other = new Client(emulator.url)
    await send(other)
    await other.close()
    expect(emulator.stats()).toMatchObject({ connections: 2, requests: 3 })
    await eventually(() => expect(emulator.stats().activeConnections).toBe(1))

    emulator.resetStats()
    expect(emulator.stats()).toEqual({ connections: 0, activeConnections: 1, requests: 0, aborted: 0, completed: 0, dropped: 0 })
  })

  it('counts a request whose client goes away mid-stream as aborted', async () => {
    const { emulator, client } = await start()
    const abort = new AbortController()
    const response = await client.request({
      method: 'POST',
      path: '/v1/messages',
      headers: { ...HEADERS, 'x-emulator-pace-ms': '50', 'x-emulator-deltas': '50' },
      body: STREAM_BODY,
      signal: abort.signal,
    })
    const reader = response.body[Symbol.asyncIterator]()
    expect(String((await reader.next()).value)).toContain('event: message_start')
    abort.abort()
    await eventually(() => expect(emulator.stats()).toMatchObject({ requests: 1, aborted: 1, completed: 0, dropped: 0 }))
  })

  it('resets the socket of the next reused-connection requests, like a stale pooled socket', async () => {
    const { emulator, client } = await start()
    expect((await send(client)).statusCode).toBe(200)
    emulator.resetNextReusedRequests(1)
    await expect(send(client)).rejects.toThrow()
    // The reset consumed the count: the retry opens a fresh connection and succeeds.
    expect((await send(client)).statusCode).toBe(200)
    expect(emulator.requests.map((recorded) => [recorded.connectionId, recorded.reusedConnection, recorded.reset])).toEqual([
      [1, false, false],
      [1, true, true],
      [2, false, false],
    ])
    await eventually(() => expect(emulator.stats()).toMatchObject({ connections: 2, requests: 3, completed: 2, dropped: 1, aborted: 0 }))
  })

  it('never resets a request on a fresh connection', async () => {
    const { emulator } = await start()
    emulator.resetNextReusedRequests(5)
    for (let attempt = 0; attempt < 2; attempt++) {
      const fresh = new Client(emulator.url, { pipelining: 0 })
      expect((await send(fresh)).statusCode).toBe(200)
      await fresh.close()
    }
    expect(emulator.stats()).toMatchObject({ connections: 2, completed: 2, dropped: 0 })
  })

  it('keeps a bounded ring of recorded requests with capped bodies', async () => {
    const { emulator, client } = await start({ recordLimit: 3, recordBodyLimitBytes: 10 })
    for (let index = 0; index < 5; index++) await send(client, { 'x-index': String(index) })
    expect(emulator.requests.map((recorded) => recorded.headers['x-index'])).toEqual(['2', '3', '4'])
    expect(emulator.lastRequest()).toMatchObject({ bodySize: BODY.length, bodyTruncated: true })
    expect(emulator.lastRequest()?.body.toString()).toBe(BODY.slice(0, 10))
    // input_tokens still counts the whole body.
    expect(JSON.parse((await send(client)).text).usage.input_tokens).toBe(Math.ceil(BODY.length / 4))
  })

  it('applies options.defaults when a request carries no control header', async () => {
    const { client } = await start({ defaults: { deltas: 2, deltaSize: 4, scenario: 'tool_use' } })
    const message = JSON.parse((await send(client)).text)
    expect(message.stop_reason).toBe('tool_use')
    expect(message.content[0]).toEqual({ type: 'text', text: 'The quic' })
    expect(message.usage.output_tokens).toBe(4)
    const overridden = JSON.parse((await send(client, { 'x-emulator-scenario': 'text' })).text)
    expect(overridden.content).toHaveLength(1)
  })

  it('close() ends in-flight streams and stops listening', async () => {
    const emulator = await createEmulator()
    const response = await request(`${emulator.url}/v1/messages`, {
      method: 'POST',
      headers: { ...HEADERS, 'x-emulator-pace-ms': '1000' },
      body: STREAM_BODY,
    })
    const body = response.body.text()
    await emulator.close()
    await expect(body).rejects.toThrow()
    await expect(request(`${emulator.url}/v1/models`, { headers: HEADERS })).rejects.toThrow()
  })
})
