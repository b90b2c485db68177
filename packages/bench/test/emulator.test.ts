import Anthropic, {
  AuthenticationError,
  BadRequestError,
  ConflictError,
  ContentTooLargeError,
  GatewayTimeoutError,
  InternalServerError,
  NotFoundError,
  OverloadedError,
  PaymentRequiredError,
  PermissionDeniedError,
  RateLimitError,
  toFile,
} from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEmulator, EMULATED_MODELS, type Emulator } from '../src/index.js'

const FILLER = 'The quick brown fox jumps over the lazy dog while the emulator streams tokens. '
const WEATHER_TOOL = {
  name: 'lookup_weather',
  description: 'Current weather',
  input_schema: { type: 'object' as const, properties: { query: { type: 'string' } } },
}
const PARAMS = {
  model: 'claude-opus-4-8',
  max_tokens: 256,
  messages: [{ role: 'user' as const, content: 'Hello, emulator' }],
}

let emulator: Emulator
let client: Anthropic

beforeAll(async () => {
  emulator = await createEmulator()
  client = new Anthropic({ apiKey: 'test-key', baseURL: emulator.url, maxRetries: 0 })
})

afterAll(async () => {
  await emulator.close()
})

function scenario(name: string, extra: Record<string, string> = {}): { headers: Record<string, string> } {
  return { headers: { 'x-emulator-scenario': name, ...extra } }
}

describe('messages through the official SDK', () => {
  it('creates a text message with deterministic usage and API response headers', async () => {
    const { data: message, response } = await client.messages
      .create(PARAMS, { headers: { 'x-emulator-cache-creation': '11', 'x-emulator-cache-read': '22' } })
      .withResponse()
    const recorded = emulator.lastRequest()
    expect(recorded?.method).toBe('POST')
    expect(message).toMatchObject({
      type: 'message',
      role: 'assistant',
      model: PARAMS.model,
      stop_reason: 'end_turn',
      stop_sequence: null,
      content: [{ type: 'text', text: FILLER.slice(0, 40) }],
      usage: {
        input_tokens: Math.ceil((recorded?.bodySize ?? 0) / 4),
        output_tokens: 5,
        cache_creation_input_tokens: 11,
        cache_read_input_tokens: 22,
      },
    })
    expect(message.id).toMatch(/^msg_[A-Za-z0-9]{24}$/)
    expect(response.headers.get('request-id')).toMatch(/^req_[A-Za-z0-9]{24}$/)
    expect(response.headers.get('anthropic-organization-id')).toBeTruthy()
    for (const bucket of ['requests', 'tokens', 'input-tokens', 'output-tokens']) {
      expect(Number(response.headers.get(`anthropic-ratelimit-${bucket}-limit`))).toBeGreaterThan(0)
      expect(Number(response.headers.get(`anthropic-ratelimit-${bucket}-remaining`))).toBeGreaterThan(0)
      expect(response.headers.get(`anthropic-ratelimit-${bucket}-reset`)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    }
    expect(response.headers.get('content-encoding')).toBeNull()
  })

  it('streams text in the requested number and size of deltas', async () => {
    const stream = client.messages.stream(PARAMS, { headers: { 'x-emulator-deltas': '7', 'x-emulator-delta-size': '3' } })
    const pieces: string[] = []
    stream.on('text', (text) => pieces.push(text))
    const message = await stream.finalMessage()
    expect(pieces).toHaveLength(7)
    expect(pieces.every((piece) => piece.length === 3)).toBe(true)
    expect(message.content).toEqual([{ type: 'text', text: FILLER.slice(0, 21) }])
    expect(message.usage.output_tokens).toBe(7)
    expect(message.usage.input_tokens).toBe(Math.ceil((emulator.lastRequest()?.bodySize ?? 0) / 4))
  })

  it('streams a tool call whose final message equals the non-streaming one', async () => {
    const params = { ...PARAMS, tools: [WEATHER_TOOL] }
    const stream = client.messages.stream(params, scenario('tool_use'))
    const streamed = await stream.finalMessage()
    const created = await client.messages.create(params, scenario('tool_use'))
    expect(streamed.stop_reason).toBe('tool_use')
    expect(created.stop_reason).toBe('tool_use')
    expect(streamed.content).toEqual(created.content)
    expect(streamed.usage.output_tokens).toBe(created.usage.output_tokens)
    const toolUse = streamed.content[1]
    expect(toolUse).toMatchObject({ type: 'tool_use', name: 'lookup_weather' })
    expect(toolUse?.type === 'tool_use' && toolUse.id).toMatch(/^toolu_/)
    expect(toolUse?.type === 'tool_use' && toolUse.input).toEqual({ query: expect.any(String) })
  })

  it('streams thinking with a signature before the text block', async () => {
    const stream = client.messages.stream(PARAMS, scenario('thinking', { 'x-emulator-deltas': '3' }))
    const thinking: string[] = []
    const signatures: string[] = []
    stream.on('thinking', (delta) => thinking.push(delta))
    stream.on('signature', (signature) => signatures.push(signature))
    const message = await stream.finalMessage()
    expect(message.content.map((block) => block.type)).toEqual(['thinking', 'text'])
    const block = message.content[0]
    expect(block?.type === 'thinking' && block.thinking).toBe(thinking.join(''))
    expect(signatures).toHaveLength(1)
    expect(block?.type === 'thinking' && block.signature).toBe(signatures[0])
    // 3 thinking deltas + 1 signature delta + 3 text deltas
    expect(message.usage.output_tokens).toBe(7)
    expect(message).toMatchObject({ content: (await client.messages.create(PARAMS, scenario('thinking', { 'x-emulator-deltas': '3' }))).content })
  })

  it.each(['citations', 'all'])('accumulates every delta type of the %s scenario into the non-streaming content', async (name) => {
    const params = { ...PARAMS, tools: [WEATHER_TOOL] }
    const citations: unknown[] = []
    const stream = client.messages.stream(params, scenario(name))
    stream.on('citation', (citation) => citations.push(citation))
    const streamed = await stream.finalMessage()
    const created = await client.messages.create(params, scenario(name))
    expect(streamed.content).toEqual(created.content)
    expect(citations).toHaveLength(1)
    const cited = streamed.content.find((block) => block.type === 'text')
    expect(cited?.type === 'text' && cited.citations).toEqual(citations)
    expect(streamed.stop_reason).toBe(name === 'all' ? 'tool_use' : 'end_turn')
  })

  it('counts tokens as ceil(body bytes / 4)', async () => {
    const result = await client.messages.countTokens({ model: PARAMS.model, messages: PARAMS.messages })
    expect(result).toEqual({ input_tokens: Math.ceil((emulator.lastRequest()?.bodySize ?? 0) / 4) })
  })

  it('serves the beta messages resource', async () => {
    const message = await client.beta.messages.create(PARAMS, { headers: { 'x-emulator-deltas': '1' } })
    expect(message.content).toEqual([{ type: 'text', text: FILLER.slice(0, 8) }])
  })
})

describe('models, batches and files through the official SDK', () => {
  it('lists models across pages and retrieves one', async () => {
    const ids: string[] = []
    for await (const model of client.models.list({ limit: 2 })) ids.push(model.id)
    expect(ids).toEqual(EMULATED_MODELS.map((model) => model.id))
    const page = await client.models.list({ before_id: ids[3] as string, limit: 2 })
    expect(page.data.map((model) => model.id)).toEqual(ids.slice(1, 3))
    expect(page.has_more).toBe(true)
    const model = await client.models.retrieve(ids[0] as string)
    expect(model).toMatchObject({ id: ids[0], type: 'model', display_name: expect.any(String), created_at: expect.any(String) })
    await expect(client.models.retrieve('claude-unknown')).rejects.toBeInstanceOf(NotFoundError)
  })

  it('creates, lists, retrieves, downloads results of and deletes a batch', async () => {
    const created = await client.messages.batches.create({
      requests: [
        { custom_id: 'first', params: PARAMS },
        { custom_id: 'second', params: { ...PARAMS, model: 'claude-haiku-4-5-20251001' } },
      ],
    })
    expect(created).toMatchObject({
      type: 'message_batch',
      processing_status: 'in_progress',
      request_counts: { processing: 2, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
      results_url: null,
      ended_at: null,
      archived_at: null,
      cancel_initiated_at: null,
    })
    expect(created.id).toMatch(/^msgbatch_/)
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(24 * 60 * 60 * 1000)

    const retrieved = await client.messages.batches.retrieve(created.id)
    expect(retrieved).toMatchObject({ processing_status: 'ended', request_counts: { processing: 0, succeeded: 2 } })
    expect(retrieved.results_url).toBe(`${emulator.url}/v1/messages/batches/${created.id}/results`)

    const listed = await client.messages.batches.list()
    expect(listed.data.map((batch) => batch.id)).toContain(created.id)

    const results = []
    for await (const result of await client.messages.batches.results(created.id)) results.push(result)
    expect(results.map((result) => result.custom_id)).toEqual(['first', 'second'])
    expect(results[1]?.result).toMatchObject({ type: 'succeeded', message: { type: 'message', model: 'claude-haiku-4-5-20251001' } })

    expect(await client.messages.batches.delete(created.id)).toEqual({ id: created.id, type: 'message_batch_deleted' })
    await expect(client.messages.batches.retrieve(created.id)).rejects.toBeInstanceOf(NotFoundError)
  })

  it('cancels a batch so that every result is canceled', async () => {
    const created = await client.messages.batches.create({ requests: [{ custom_id: 'only', params: PARAMS }] })
    const canceling = await client.messages.batches.cancel(created.id)
    expect(canceling.processing_status).toBe('canceling')
    expect(canceling.cancel_initiated_at).not.toBeNull()
    const ended = await client.messages.batches.retrieve(created.id)
    expect(ended).toMatchObject({ processing_status: 'ended', request_counts: { processing: 0, succeeded: 0, canceled: 1 } })
    const results = []
    for await (const result of await client.messages.batches.results(created.id)) results.push(result)
    expect(results).toEqual([{ custom_id: 'only', result: { type: 'canceled' } }])
  })

  it('keeps a batch in progress for batchProcessingMs', async () => {
    const slow = await createEmulator({ batchProcessingMs: 150 })
    try {
      const slowClient = new Anthropic({ apiKey: 'test-key', baseURL: slow.url, maxRetries: 0 })
      const created = await slowClient.messages.batches.create({ requests: [{ custom_id: 'a', params: PARAMS }] })
      expect((await slowClient.messages.batches.retrieve(created.id)).processing_status).toBe('in_progress')
      await new Promise((resolve) => setTimeout(resolve, 170))
      expect((await slowClient.messages.batches.retrieve(created.id)).processing_status).toBe('ended')
    } finally {
      await slow.close()
    }
  })

  it('uploads, lists, retrieves, downloads and deletes a file', async () => {
    const bytes = Buffer.from([0, 1, 2, 13, 10, 45, 45, 255, ...Buffer.from('\r\n--not-a-boundary\r\n')])
    const uploaded = await client.beta.files.upload({ file: await toFile(bytes, 'report "v1".bin', { type: 'application/pdf' }) })
    expect(uploaded).toMatchObject({
      type: 'file',
      filename: 'report "v1".bin',
      mime_type: 'application/pdf',
      size_bytes: bytes.length,
      downloadable: true,
    })
    expect(uploaded.id).toMatch(/^file_/)
    const listed = await client.beta.files.list()
    expect(listed.data.map((file) => file.id)).toContain(uploaded.id)
    expect(await client.beta.files.retrieveMetadata(uploaded.id)).toEqual(uploaded)
    const download = await client.beta.files.download(uploaded.id)
    expect(Buffer.from(await download.arrayBuffer())).toEqual(bytes)
    expect(await client.beta.files.delete(uploaded.id)).toEqual({ id: uploaded.id, type: 'file_deleted' })
    await expect(client.beta.files.retrieveMetadata(uploaded.id)).rejects.toBeInstanceOf(NotFoundError)
  })

  it('pages files with the GA PageCursor client', async () => {
    const ids: string[] = []
    for (const name of ['a.txt', 'b.txt', 'c.txt']) {
      ids.push((await client.beta.files.upload({ file: await toFile(Buffer.from(name), name) })).id)
    }
    const seen: string[] = []
    for await (const file of client.files.list({ limit: 2 })) seen.push(file.id)
    expect(seen.slice(0, 3)).toEqual([...ids].reverse())
  })
})

describe('errors through the official SDK', () => {
  it.each([
    [400, BadRequestError, 'invalid_request_error'],
    [401, AuthenticationError, 'authentication_error'],
    [402, PaymentRequiredError, 'billing_error'],
    [403, PermissionDeniedError, 'permission_error'],
    [404, NotFoundError, 'not_found_error'],
    [409, ConflictError, 'conflict_error'],
    [413, ContentTooLargeError, 'request_too_large'],
    [429, RateLimitError, 'rate_limit_error'],
    [500, InternalServerError, 'api_error'],
    [504, GatewayTimeoutError, 'timeout_error'],
    [529, OverloadedError, 'overloaded_error'],
  ] as const)('maps x-emulator-status %i to %o', async (status, ErrorClass, type) => {
    const error = await client.messages
      .create(PARAMS, { headers: { 'x-emulator-status': String(status) } })
      .then(() => undefined, (caught: unknown) => caught)
    expect(error).toBeInstanceOf(ErrorClass)
    const apiError = error as InstanceType<typeof ErrorClass>
    expect(apiError.status).toBe(status)
    expect(apiError.error).toEqual({ type: 'error', error: { type, message: expect.any(String) }, request_id: apiError.requestID })
    expect(apiError.requestID).toMatch(/^req_/)
  })

  it('retries fail-first failures with retry-after and then succeeds', async () => {
    const attemptKey = `sdk-retry-${Date.now()}`
    const retrying = new Anthropic({ apiKey: 'test-key', baseURL: emulator.url, maxRetries: 2 })
    const message = await retrying.messages.create(PARAMS, {
      headers: { 'x-emulator-fail-first': '2', 'x-emulator-attempt-key': attemptKey, 'x-emulator-retry-after': '0.01' },
    })
    expect(message.type).toBe('message')
    const attempts = emulator.requests.filter((request) => request.headers['x-emulator-attempt-key'] === attemptKey)
    expect(attempts.map((request) => request.headers['x-stainless-retry-count'])).toEqual(['0', '1', '2'])
  })

  it('checks API keys when apiKeys is set, accepting x-api-key or a bearer token', async () => {
    const guarded = await createEmulator({ apiKeys: ['good-key'] })
    try {
      const wrong = new Anthropic({ apiKey: 'bad-key', baseURL: guarded.url, maxRetries: 0 })
      await expect(wrong.messages.create(PARAMS)).rejects.toBeInstanceOf(AuthenticationError)
      const right = new Anthropic({ apiKey: 'good-key', baseURL: guarded.url, maxRetries: 0 })
      expect((await right.messages.create(PARAMS)).type).toBe('message')
      const bearer = new Anthropic({ apiKey: null, authToken: 'good-key', baseURL: guarded.url, maxRetries: 0 })
      expect((await bearer.models.list()).data.length).toBeGreaterThan(0)
      expect(guarded.lastRequest()?.headers.authorization).toBe('Bearer good-key')
    } finally {
      await guarded.close()
    }
  })
})
