import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync } from 'node:zlib'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEmulator, type Emulator } from '../src/index.js'
import { eventually } from './eventually.js'

const HEADERS = { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }
const BODY = { model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }
const STREAM_BODY = JSON.stringify({ ...BODY, stream: true })

let emulator: Emulator
let agent: Agent

beforeAll(async () => {
  emulator = await createEmulator()
  agent = new Agent()
})

afterAll(async () => {
  await agent.close()
  await emulator.close()
})

function post(path: string, body: string, headers: Record<string, string> = {}) {
  return request(`${emulator.url}${path}`, { method: 'POST', headers: { ...HEADERS, ...headers }, body, dispatcher: agent })
}

function get(path: string, headers: Record<string, string> = {}) {
  return request(`${emulator.url}${path}`, { method: 'GET', headers: { ...HEADERS, ...headers }, dispatcher: agent })
}

interface SseFrame {
  event: string
  data: Record<string, unknown>
}

function parseSse(text: string): SseFrame[] {
  expect(text.endsWith('\n\n')).toBe(true)
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((frame) => {
      const lines = frame.split('\n')
      expect(lines).toHaveLength(2)
      expect(lines[0]).toMatch(/^event: \w+$/)
      expect(lines[1]).toMatch(/^data: /)
      return { event: (lines[0] as string).slice('event: '.length), data: JSON.parse((lines[1] as string).slice('data: '.length)) }
    })
}

/** Reads an SSE body, noting when each complete event became readable (after decompression). */
async function timedEvents(
  body: AsyncIterable<Buffer>,
  encoding?: 'gzip' | 'br',
): Promise<{ text: string; times: number[]; error: unknown }> {
  let text = ''
  const times: number[] = []
  const onText = (chunk: Buffer): void => {
    text += chunk.toString('utf8')
    const complete = text.split('\n\n').length - 1
    while (times.length < complete) times.push(performance.now())
  }
  let error: unknown
  const decoder = encoding === undefined ? undefined : encoding === 'gzip' ? createGunzip() : createBrotliDecompress()
  decoder?.on('data', onText)
  try {
    for await (const chunk of body) {
      if (decoder === undefined) onText(chunk)
      else decoder.write(chunk)
    }
    if (decoder !== undefined) {
      decoder.end()
      await once(decoder, 'end')
    }
  } catch (caught) {
    error = caught
  }
  return { text, times, error }
}

describe('SSE wire format', () => {
  it('frames a text stream byte for byte', async () => {
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-deltas': '2', 'x-emulator-delta-size': '3' })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(response.headers['transfer-encoding']).toBe('chunked')
    expect(response.headers['content-encoding']).toBeUndefined()
    const text = await response.body.text()
    const id = /"id":"(msg_[A-Za-z0-9]{24})"/.exec(text)?.[1]
    const inputTokens = Math.ceil(Buffer.byteLength(STREAM_BODY) / 4)
    expect(text).toBe(
      'event: message_start\n' +
        `data: {"type":"message_start","message":{"id":"${id}","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":${inputTokens},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}\n\n` +
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n' +
        'event: ping\ndata: {"type": "ping"}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The"}}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" qu"}}\n\n' +
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n' +
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}\n\n' +
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    )
  })

  it('orders events of every block and sets each data.type to the event name', async () => {
    const response = await post('/v1/messages?beta=true', STREAM_BODY, { 'x-emulator-scenario': 'all', 'x-emulator-deltas': '2' })
    const frames = parseSse(await response.body.text())
    for (const frame of frames) expect(frame.data.type).toBe(frame.event)
    const names = frames.map((frame) => frame.event)
    const block = ['content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop']
    expect(names).toEqual(['message_start', ...block.slice(0, 1), 'ping', ...block.slice(1), ...block, ...block.slice(0, 3), 'content_block_stop', 'message_delta', 'message_stop'])
    const deltaTypes = frames.flatMap((frame) => (frame.event === 'content_block_delta' ? [(frame.data.delta as { type: string }).type] : []))
    expect(new Set(deltaTypes)).toEqual(new Set(['thinking_delta', 'signature_delta', 'citations_delta', 'text_delta', 'input_json_delta']))
    expect(frames.at(-2)?.data).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 8 } })
  })

  it('repeats the input-side usage in message_delta with x-emulator-delta-usage: full', async () => {
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-delta-usage': 'full', 'x-emulator-cache-read': '5' })
    const frames = parseSse(await response.body.text())
    expect(frames.at(-2)?.data.usage).toEqual({
      input_tokens: Math.ceil(Buffer.byteLength(STREAM_BODY) / 4),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 5,
      output_tokens: 5,
    })
  })

  it('paces events by x-emulator-pace-ms', async () => {
    const paceMs = 40
    const started = performance.now()
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-pace-ms': String(paceMs), 'x-emulator-deltas': '3' })
    const { text, times, error } = await timedEvents(response.body)
    expect(error).toBeUndefined()
    expect(parseSse(text)).toHaveLength(9)
    const first = times[0] as number
    // The server sleeps paceMs before each later event, so event k cannot be readable before k pauses passed.
    for (const [index, time] of times.entries()) expect(time - first).toBeGreaterThanOrEqual(index * paceMs - 15)
    expect((times.at(-1) as number) - started).toBeGreaterThanOrEqual(8 * paceMs)
  })

  it('stalls once after x-emulator-stall-after events', async () => {
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-stall-after': '3', 'x-emulator-stall-ms': '150' })
    const { times } = await timedEvents(response.body)
    expect((times[3] as number) - (times[2] as number)).toBeGreaterThanOrEqual(135)
  })

  it('delays response headers by x-emulator-headers-delay-ms', async () => {
    const started = performance.now()
    const response = await post('/v1/messages', JSON.stringify(BODY), { 'x-emulator-headers-delay-ms': '120' })
    expect(performance.now() - started).toBeGreaterThanOrEqual(115)
    expect(response.statusCode).toBe(200)
    await response.body.dump()
  })

  it('sends an overloaded error event after x-emulator-error-after events and ends the response', async () => {
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-error-after': '2' })
    const { text, error } = await timedEvents(response.body)
    expect(error).toBeUndefined()
    const frames = parseSse(text)
    expect(frames.map((frame) => frame.event)).toEqual(['message_start', 'content_block_start', 'error'])
    expect(text.split('\n\n').at(-2)).toBe(
      `event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"},"request_id":"${response.headers['request-id']}"}`,
    )
  })

  it.each([3, 0])('destroys the socket after %i events with x-emulator-drop-after', async (events) => {
    const droppedBefore = emulator.stats().dropped
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-drop-after': String(events) })
    expect(response.statusCode).toBe(200)
    const { text, error } = await timedEvents(response.body)
    expect(error).toBeInstanceOf(Error)
    expect(text === '' ? [] : parseSse(text)).toHaveLength(events)
    await eventually(() => expect(emulator.stats().dropped).toBe(droppedBefore + 1))
  })

  it.each(['gzip', 'br'] as const)('compresses SSE with %s and flushes after every event', async (encoding) => {
    const paceMs = 30
    const response = await post('/v1/messages', STREAM_BODY, { 'x-emulator-encoding': encoding, 'x-emulator-pace-ms': String(paceMs) })
    expect(response.headers['content-encoding']).toBe(encoding)
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const { text, times, error } = await timedEvents(response.body, encoding)
    expect(error).toBeUndefined()
    expect(parseSse(text).map((frame) => frame.event).at(-1)).toBe('message_stop')
    // Each event was decodable when it arrived, not only at the end of the stream.
    expect(times).toHaveLength(11)
    expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(10 * paceMs - 15)
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(paceMs - 15)
  })

  it.each([
    ['gzip', gunzipSync],
    ['br', brotliDecompressSync],
  ] as const)('compresses JSON with %s only when asked', async (encoding, decompress) => {
    const response = await post('/v1/messages', JSON.stringify(BODY), { 'x-emulator-encoding': encoding })
    expect(response.headers['content-encoding']).toBe(encoding)
    const compressed = Buffer.from(await response.body.arrayBuffer())
    expect(Number(response.headers['content-length'])).toBe(compressed.length)
    expect(JSON.parse(decompress(compressed).toString())).toMatchObject({ type: 'message', model: 'claude-test' })

    const plain = await post('/v1/messages', JSON.stringify(BODY), { 'accept-encoding': 'gzip, br' })
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(await plain.body.json()).toMatchObject({ type: 'message' })
  })
})

describe('HTTP errors and controls', () => {
  it('answers x-emulator-status with the Anthropic error envelope and pass-through retry headers', async () => {
    const response = await post('/v1/messages', STREAM_BODY, {
      'x-emulator-status': '429',
      'x-emulator-retry-after': '7',
      'x-emulator-should-retry': 'false',
      'x-emulator-error-message': 'slow down',
    })
    expect(response.statusCode).toBe(429)
    expect(response.headers['content-type']).toBe('application/json')
    expect(response.headers['retry-after']).toBe('7')
    expect(response.headers['x-should-retry']).toBe('false')
    expect(response.headers['anthropic-ratelimit-requests-limit']).toBeDefined()
    expect(await response.body.text()).toBe(
      `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"${response.headers['request-id']}"}`,
    )
  })

  it('fails the first K requests of an attempt key, then succeeds', async () => {
    const headers = { 'x-emulator-fail-first': '2', 'x-emulator-attempt-key': 'wire-fail-first', 'x-emulator-status': '503' }
    const statuses: number[] = []
    for (let attempt = 0; attempt < 3; attempt++) {
      const response = await post('/v1/messages', JSON.stringify(BODY), headers)
      statuses.push(response.statusCode)
      await response.body.dump()
    }
    expect(statuses).toEqual([503, 503, 200])
    const defaultStatus = await post('/v1/messages', JSON.stringify(BODY), { 'x-emulator-fail-first': '1', 'x-emulator-attempt-key': 'wire-default' })
    expect(defaultStatus.statusCode).toBe(529)
    expect(await defaultStatus.body.json()).toMatchObject({ error: { type: 'overloaded_error' } })
  })

  it('redirects with 307 and does not serve the request', async () => {
    const response = await post('/v1/messages', JSON.stringify(BODY), { 'x-emulator-redirect': 'http://127.0.0.1:9/elsewhere' })
    expect(response.statusCode).toBe(307)
    expect(response.headers.location).toBe('http://127.0.0.1:9/elsewhere')
    expect(response.headers['request-id']).toMatch(/^req_/)
    expect(await response.body.text()).toBe('')
  })

  it.each([
    ['no anthropic-version header', { 'anthropic-version': '' }, BODY, 400, 'invalid_request_error', 'anthropic-version: header is required'],
    ['no API key', { 'x-api-key': '' }, BODY, 401, 'authentication_error', 'x-api-key header is required'],
    ['no max_tokens', {}, { model: 'm', messages: [] }, 400, 'invalid_request_error', 'max_tokens: Field required'],
    ['no model', {}, { max_tokens: 1, messages: [] }, 400, 'invalid_request_error', 'model: Field required'],
    ['no messages', {}, { model: 'm', max_tokens: 1 }, 400, 'invalid_request_error', 'messages: Field required'],
    ['a bad control header', { 'x-emulator-deltas': 'many' }, BODY, 400, 'invalid_request_error', "x-emulator-deltas must be an integer from 0 to 1000000, got 'many'"],
  ])('rejects a request with %s', async (_case, headers, body, status, type, message) => {
    const sent = Object.fromEntries(Object.entries({ ...HEADERS, ...headers }).filter(([, value]) => value !== ''))
    const response = await request(`${emulator.url}/v1/messages`, { method: 'POST', headers: sent, body: JSON.stringify(body), dispatcher: agent })
    expect(response.statusCode).toBe(status)
    expect(await response.body.json()).toEqual({ type: 'error', error: { type, message }, request_id: response.headers['request-id'] })
  })

  it('rejects malformed JSON', async () => {
    const response = await post('/v1/messages', '{"model":')
    expect(response.statusCode).toBe(400)
    expect(await response.body.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } })
  })

  it.each([
    ['GET', '/v1/unknown'],
    ['GET', '/v1/messages'],
    ['GET', '/v2/models'],
    ['GET', '/v1/models/claude-opus-4-8/extra'],
    ['GET', '/v1/messages/batches/msgbatch_missing'],
    ['GET', '/v1/files/file_missing/content'],
  ])('answers %s %s with 404 not_found_error', async (method, path) => {
    const response = await request(`${emulator.url}${path}`, { method, headers: HEADERS, dispatcher: agent })
    expect(response.statusCode).toBe(404)
    expect(await response.body.json()).toEqual({
      type: 'error',
      error: { type: 'not_found_error', message: expect.any(String) },
      request_id: response.headers['request-id'],
    })
  })

  it('serves ?beta=true variants and builds results_url from the Host header', async () => {
    const models = await get('/v1/models?beta=true&limit=1')
    expect(await models.body.json()).toMatchObject({ data: [{ id: 'claude-opus-4-8' }], has_more: true })
    const counted = await post('/v1/messages/count_tokens?beta=true', JSON.stringify({ model: 'm', messages: [] }))
    expect(await counted.body.json()).toEqual({ input_tokens: 7 })
    const created = await post(
      '/v1/messages/batches?beta=true',
      JSON.stringify({ requests: [{ custom_id: 'x', params: BODY }] }),
      { host: 'proxy.example:8080' },
    )
    const { id } = (await created.body.json()) as { id: string }
    const retrieved = await get(`/v1/messages/batches/${id}?beta=true`, { host: 'proxy.example:8080' })
    expect(await retrieved.body.json()).toMatchObject({ results_url: `http://proxy.example:8080/v1/messages/batches/${id}/results` })
    const results = await get(`/v1/messages/batches/${id}/results`)
    expect(results.headers['content-type']).toBe('application/binary')
    const lines = (await results.body.text()).split('\n')
    expect(lines.at(-1)).toBe('')
    expect(JSON.parse(lines[0] as string)).toMatchObject({ custom_id: 'x', result: { type: 'succeeded', message: { model: 'claude-test' } } })
  })

  it('keeps file bytes exact through a hand-written multipart upload', async () => {
    const content = Buffer.from('line one\r\n--boundary-lookalike\r\n\u0000\u00ff end')
    const boundary = 'xYzBoundary'
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\n`),
      content,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ])
    const uploaded = await request(`${emulator.url}/v1/files`, {
      method: 'POST',
      headers: { ...HEADERS, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      dispatcher: agent,
    })
    const metadata = (await uploaded.body.json()) as { id: string; size_bytes: number; mime_type: string; filename: string }
    expect(metadata).toMatchObject({ size_bytes: content.length, mime_type: 'text/plain', filename: 'notes.txt' })
    const downloaded = await get(`/v1/files/${metadata.id}/content`)
    expect(Buffer.from(await downloaded.body.arrayBuffer())).toEqual(content)
    const missingPart = await request(`${emulator.url}/v1/files`, {
      method: 'POST',
      headers: { ...HEADERS, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: `--${boundary}\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--${boundary}--\r\n`,
      dispatcher: agent,
    })
    expect(missingPart.statusCode).toBe(400)
    await missingPart.body.dump()
  })
})
