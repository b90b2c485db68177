import Anthropic, { toFile } from '@anthropic-ai/sdk'
import { createEmulator, type Emulator } from '@apt/bench'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { freePort, type RunningProxy, startProxy } from './helpers.js'

/** Ids, timestamps and request ids differ between two calls; everything else must match. */
function normalise (value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) => {
    if (typeof v !== 'string') return v
    if (/^(msg|msgbatch|file|req|toolu|srvtoolu)_[A-Za-z0-9_]+$/.test(v)) return '<id>'
    if (/^\d{4}-\d{2}-\d{2}T/.test(v)) return '<time>'
    if (/^https?:\/\/127\.0\.0\.1:\d+\//.test(v)) return v.replace(/^https?:\/\/127\.0\.0\.1:\d+/, '<origin>').replace(/msgbatch_[A-Za-z0-9]+/, '<id>')
    return v
  })
}

const PARAMS = { model: 'claude-opus-4-8', max_tokens: 1024, messages: [{ role: 'user' as const, content: 'Hello there' }] }

describe('the official SDK through the proxy behaves exactly as against the API directly', () => {
  let emulator: Emulator
  let proxy: RunningProxy
  let direct: Anthropic
  let proxied: Anthropic

  beforeAll(async () => {
    emulator = await createEmulator()
    // results_url must point at the proxy itself, so pick its port first.
    const port = await freePort()
    proxy = await startProxy(emulator.url, { publicBaseUrl: `http://127.0.0.1:${port}` }, port)
    direct = new Anthropic({ baseURL: emulator.url, apiKey: 'sk-ant-test', maxRetries: 0 })
    proxied = new Anthropic({ baseURL: proxy.url, apiKey: 'sk-ant-test', maxRetries: 0 })
  })
  afterAll(async () => {
    await proxy.close()
    await emulator.close()
  })

  test('messages.create (JSON)', async () => {
    const [a, b] = await Promise.all([direct.messages.create(PARAMS), proxied.messages.create(PARAMS)])
    expect(normalise(b)).toEqual(normalise(a))
    expect(b.content[0]?.type).toBe('text')
    expect(b.usage.input_tokens).toBeGreaterThan(0)
  })

  test.each(['text', 'tool_use', 'thinking', 'citations', 'all'])('messages.stream, scenario %s: same events, same final message', async (scenario) => {
    const headers = { 'x-emulator-scenario': scenario, 'x-emulator-deltas': '6' }
    const run = async (client: Anthropic): Promise<{ events: unknown[], final: unknown }> => {
      const stream = client.messages.stream(PARAMS, { headers })
      const events: unknown[] = []
      stream.on('streamEvent', (event) => { events.push(event) })
      const final = await stream.finalMessage()
      return { events, final }
    }
    const [a, b] = await Promise.all([run(direct), run(proxied)])
    expect(normalise(b.events)).toEqual(normalise(a.events))
    expect(normalise(b.final)).toEqual(normalise(a.final))
    expect(b.events.length).toBeGreaterThan(5)
  })

  test('beta messages (?beta=true) and anthropic-beta reach the upstream', async () => {
    const message = await proxied.beta.messages.create({ ...PARAMS, betas: ['prompt-caching-2024-07-31', 'files-api-2025-04-14'] }, { query: { beta: 'true' } })
    expect(message.type).toBe('message')
    const seen = emulator.lastRequest()
    expect(seen?.url).toBe('/v1/messages?beta=true')
    expect(seen?.headers['anthropic-beta']).toBe('prompt-caching-2024-07-31,files-api-2025-04-14')
  })

  test('count_tokens', async () => {
    const [a, b] = await Promise.all([direct.messages.countTokens(PARAMS), proxied.messages.countTokens(PARAMS)])
    expect(b).toEqual(a)
  })

  test('models: list with pagination and retrieve', async () => {
    const ids = async (client: Anthropic): Promise<string[]> => {
      const out: string[] = []
      for await (const model of client.models.list({ limit: 2 })) out.push(model.id)
      return out
    }
    const [a, b] = await Promise.all([ids(direct), ids(proxied)])
    expect(b).toEqual(a)
    expect(b.length).toBeGreaterThan(2)
    const one = await proxied.models.retrieve(b[0] as string)
    expect(one).toEqual(await direct.models.retrieve(b[0] as string))
    await expect(proxied.models.retrieve('no-such-model')).rejects.toBeInstanceOf(Anthropic.NotFoundError)
  })

  test('message batches: create, retrieve, list, results (downloaded through the proxy), cancel, delete', async () => {
    const requests = [
      { custom_id: 'first', params: PARAMS },
      { custom_id: 'second', params: { ...PARAMS, messages: [{ role: 'user' as const, content: 'Another' }] } },
    ]
    const batch = await proxied.messages.batches.create({ requests })
    expect(batch.type).toBe('message_batch')
    const fetched = await proxied.messages.batches.retrieve(batch.id)
    expect(fetched.id).toBe(batch.id)
    expect(fetched.results_url?.startsWith(proxy.url)).toBe(true)
    const listed: string[] = []
    for await (const item of proxied.messages.batches.list({ limit: 10 })) listed.push(item.id)
    expect(listed).toContain(batch.id)
    const before = emulator.stats().requests
    const results: string[] = []
    for await (const result of await proxied.messages.batches.results(batch.id)) results.push(`${result.custom_id}:${result.result.type}`)
    expect(results.sort()).toEqual(['first:succeeded', 'second:succeeded'])
    // retrieve + the results download both went through the proxy to the emulator
    expect(emulator.stats().requests).toBeGreaterThanOrEqual(before + 2)
    expect(emulator.lastRequest()?.url).toBe(`/v1/messages/batches/${batch.id}/results`)

    const other = await proxied.messages.batches.create({ requests })
    const canceled = await proxied.messages.batches.cancel(other.id)
    expect(canceled.id).toBe(other.id)
    const deleted = await proxied.messages.batches.delete(other.id)
    expect(deleted).toEqual({ id: other.id, type: 'message_batch_deleted' })
    await expect(proxied.messages.batches.retrieve('msgbatch_missing')).rejects.toBeInstanceOf(Anthropic.NotFoundError)
  })

  test('files (beta): multipart upload, list, retrieve, download bytes, delete', async () => {
    const bytes = Buffer.alloc(300_000)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 256
    const uploaded = await proxied.beta.files.upload({ file: await toFile(bytes, 'data.bin', { type: 'application/octet-stream' }) })
    expect(uploaded).toMatchObject({ type: 'file', filename: 'data.bin', size_bytes: bytes.length })
    const listed: string[] = []
    for await (const file of proxied.beta.files.list()) listed.push(file.id)
    expect(listed).toContain(uploaded.id)
    expect((await proxied.beta.files.retrieveMetadata(uploaded.id)).id).toBe(uploaded.id)
    const content = Buffer.from(await (await proxied.beta.files.download(uploaded.id)).arrayBuffer())
    expect(content.equals(bytes)).toBe(true)
    expect(await proxied.beta.files.delete(uploaded.id)).toEqual({ id: uploaded.id, type: 'file_deleted' })
  })

  test('40 concurrent file round trips (upload, download, delete) all complete byte-exact over reused connections', async () => {
    // Uploads and downloads of 300 KB at once meet back-pressure on both sides; a connection
    // pooled in the wrong state would leave a later request hanging here.
    const bytes = Buffer.alloc(300_000)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 13) % 251
    const roundTrip = async (): Promise<boolean> => {
      const uploaded = await proxied.beta.files.upload({ file: await toFile(bytes, 'data.bin', { type: 'application/octet-stream' }) }, { timeout: 10_000 })
      const content = Buffer.from(await (await proxied.beta.files.download(uploaded.id, { timeout: 10_000 })).arrayBuffer())
      await proxied.beta.files.delete(uploaded.id, { timeout: 10_000 })
      return content.equals(bytes)
    }
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(Array.from({ length: 20 }, roundTrip))
      expect(results.every(Boolean)).toBe(true)
    }
  }, 40_000)

  test.each([
    [400, Anthropic.BadRequestError], [401, Anthropic.AuthenticationError], [403, Anthropic.PermissionDeniedError],
    [404, Anthropic.NotFoundError], [429, Anthropic.RateLimitError], [500, Anthropic.InternalServerError],
    [529, Anthropic.InternalServerError],
  ])('error %i reaches the SDK as the same error class, body and request id', async (status, ErrorClass) => {
    const headers = { 'x-emulator-status': String(status), 'x-emulator-retry-after': '2' }
    const [a, b] = await Promise.all([
      direct.messages.create(PARAMS, { headers }).catch((error: unknown) => error),
      proxied.messages.create(PARAMS, { headers }).catch((error: unknown) => error),
    ]) as [InstanceType<typeof Anthropic.APIError>, InstanceType<typeof Anthropic.APIError>]
    expect(b).toBeInstanceOf(ErrorClass)
    expect(b.status).toBe(a.status)
    expect(normalise(b.error)).toEqual(normalise(a.error))
    expect(b.requestID).toMatch(/^req_/)
    expect((b.error as { request_id: string }).request_id).toBe(b.requestID)
    expect(b.headers?.get('retry-after')).toBe('2')
  })

  test('SDK retries through the proxy: fail the first 2 attempts, succeed on the third', async () => {
    const retrying = new Anthropic({ baseURL: proxy.url, apiKey: 'k', maxRetries: 2 })
    const message = await retrying.messages.create(PARAMS, {
      headers: { 'x-emulator-fail-first': '2', 'x-emulator-attempt-key': `retry-${Date.now()}`, 'x-emulator-status': '529', 'x-emulator-retry-after': '0.01' },
    })
    expect(message.type).toBe('message')
  })

  test('mid-stream error event reaches the SDK as an error', async () => {
    const stream = proxied.messages.stream(PARAMS, { headers: { 'x-emulator-error-after': '3' } })
    await expect(stream.finalMessage()).rejects.toThrow(/Overloaded/)
  })

  test('gzip and brotli responses, JSON and streams, decode identically through the proxy', async () => {
    for (const encoding of ['gzip', 'br']) {
      const headers = { 'x-emulator-encoding': encoding }
      const [a, b] = await Promise.all([direct.messages.create(PARAMS, { headers }), proxied.messages.create(PARAMS, { headers })])
      expect(normalise(b)).toEqual(normalise(a))
      const stream = proxied.messages.stream(PARAMS, { headers: { ...headers, 'x-emulator-deltas': '10' } })
      const final = await stream.finalMessage()
      expect(final.usage.output_tokens).toBe(10)
    }
  })

  test('200 sequential requests use only a handful of upstream connections', async () => {
    const emulatorForReuse = await createEmulator()
    const reuseProxy = await startProxy(emulatorForReuse.url)
    try {
      const client = new Anthropic({ baseURL: reuseProxy.url, apiKey: 'k', maxRetries: 0 })
      for (let i = 0; i < 200; i++) await client.messages.create(PARAMS)
      expect(emulatorForReuse.stats().requests).toBe(200)
      expect(emulatorForReuse.stats().connections).toBeLessThanOrEqual(3)
      const stats = reuseProxy.app.apt.stats()
      expect(stats.hits + stats.misses).toBe(200)
      expect(stats.misses).toBe(emulatorForReuse.stats().connections)
    } finally {
      await reuseProxy.close()
      await emulatorForReuse.close()
    }
  })
})
