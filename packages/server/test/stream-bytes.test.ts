import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { createMonitor } from '@apt/monitor'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type FakeUpstream, type RunningProxy, readTimed, sleep, startFakeUpstream, startProxy } from './helpers.js'

const fixture = readFileSync(new URL('./fixtures/padded-stream.sse', import.meta.url))
const events = fixture.toString('utf8').split(/(?<=\n\n)/)
const PACE_MS = 40

describe('SSE streams pass through byte for byte, as paced by the upstream', () => {
  let upstream: FakeUpstream
  let proxy: RunningProxy

  beforeAll(async () => {
    upstream = await startFakeUpstream(async (request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_fixture' })
      for (const [index, event] of events.entries()) {
        const bytes = Buffer.from(event, 'utf8')
        if (index === 3) {
          // Split inside a multi-byte character: the proxy must not care where chunks fall.
          const cut = bytes.indexOf(Buffer.from('é', 'utf8')) + 1
          response.write(bytes.subarray(0, cut))
          await sleep(5)
          response.write(bytes.subarray(cut))
        } else {
          response.write(bytes)
        }
        if (request.url?.includes('fast') !== true) await sleep(PACE_MS)
      }
      response.end()
    })
    proxy = await startProxy(upstream.url)
  })
  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })

  test('the proxied stream is byte-identical to the direct one and to the fixture', async () => {
    const init = { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k' }, body: '{"stream":true}' }
    const direct = await readTimed(await fetch(`${upstream.url}/v1/messages?fast=1`, init))
    const proxied = await readTimed(await fetch(`${proxy.url}/v1/messages?fast=1`, init))
    expect(direct.bytes.equals(fixture)).toBe(true)
    expect(proxied.bytes.equals(direct.bytes)).toBe(true)
  })

  test('events arrive as the upstream sends them: the first is not held back, no burst at the end', async () => {
    const response = await fetch(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: '{"stream":true}' })
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(response.headers.get('request-id')).toBe('req_fixture')
    const { chunks, bytes } = await readTimed(response)
    expect(bytes.equals(fixture)).toBe(true)
    // One chunk per upstream write (or close to it): nothing coalesced into a burst.
    expect(chunks.length).toBeGreaterThanOrEqual(events.length)
    const first = (chunks[0] as { at: number }).at
    const last = (chunks.at(-1) as { at: number }).at
    // The upstream spreads the events over (n-1) pauses; the client must see that spread.
    expect(last - first).toBeGreaterThan((events.length - 2) * PACE_MS * 0.75)
    // Each event arrives on its own, separated by roughly the pacing.
    const gaps = chunks.slice(1).map((chunk, i) => chunk.at - (chunks[i] as { at: number }).at)
    expect(gaps.filter((gap) => gap >= PACE_MS * 0.5).length).toBeGreaterThanOrEqual(events.length - 3)
  })
})

describe('events the usage tap cannot read pass through untouched', () => {
  let upstream: FakeUpstream
  let proxy: RunningProxy
  // Valid SSE whose data the tap reads but that is not what the API sends: JSON that is not an
  // object, a message_delta without data, an event split mid-name across writes.
  const odd = [
    'event: message_start\ndata: null\n\n',
    'event: message_delta\n\n',
    'event: content_bl',
    'ock_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n',
    'event: message_delta\ndata: 7\n\n',
    'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  ]

  beforeAll(async () => {
    upstream = await startFakeUpstream(async (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const part of odd) {
        response.write(part)
        await sleep(10)
      }
      response.end()
    })
    proxy = await startProxy(upstream.url)
  })
  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })

  test('the client gets every byte and the stream ends normally', async () => {
    const response = await fetch(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k' }, body: '{"stream":true}' })
    expect(response.status).toBe(200)
    expect(Buffer.from(await response.arrayBuffer()).toString('utf8')).toBe(odd.join(''))
  })
})

describe('the end of a stream reaches the client before the proxy\'s bookkeeping of it', () => {
  let upstream: FakeUpstream
  let proxy: RunningProxy
  /** Wall-clock times at which the slowed bookkeeping of each request began. */
  const bookkeeping: number[] = []

  beforeAll(async () => {
    upstream = await startFakeUpstream((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      response.write('event: ping\ndata: {}\n\n')
      // The last event and the terminator leave in one write: one upstream read brings both.
      setTimeout(() => response.end('event: message_stop\ndata: {"type":"message_stop"}\n\n'), 20)
    })
    // A monitor whose record() takes 300 ms stands for the bookkeeping of a finished request.
    const monitor = createMonitor()
    const record = monitor.record.bind(monitor)
    monitor.record = (sample) => {
      bookkeeping.push(Date.now())
      const until = Date.now() + 300
      while (Date.now() < until) { /* busy: the proxy's one thread is held */ }
      record(sample)
    }
    proxy = await startProxy(upstream.url, { monitor })
  })
  afterAll(async () => {
    await proxy.close()
    await upstream.close()
  })

  test('a client in another process has the terminating chunk before the 300 ms of bookkeeping end', async () => {
    const { port } = new URL(proxy.url)
    // The client runs in its own process: this one is blocked while the bookkeeping runs.
    const client = `
      const socket = require('node:net').connect(${port}, '127.0.0.1', () => socket.write('POST /v1/messages HTTP/1.1\\r\\nhost: x\\r\\nx-api-key: k\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\n\\r\\n{}'))
      let text = ''
      socket.on('data', (data) => {
        text += data.toString('latin1')
        if (text.endsWith('\\r\\n0\\r\\n\\r\\n')) { process.stdout.write(String(Date.now())); socket.destroy() }
      })`
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', client])
    const ended = Number(stdout)
    expect(bookkeeping).toHaveLength(1)
    expect(ended).toBeGreaterThan(0)
    expect(ended).toBeLessThan((bookkeeping[0] as number) + 150)
  })
})
