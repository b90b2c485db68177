import { readFileSync } from 'node:fs'
import { brotliCompressSync, constants, createGzip } from 'node:zlib'
import { describe, expect, test } from 'vitest'
import { seededRandom } from '../../../test/support/seeded-random.js'
import { createUsageTap, eventEnd, type UsageFacts } from './usage-tap.js'

const fixture = readFileSync(new URL('../test/fixtures/padded-stream.sse', import.meta.url))

function run (kind: 'sse' | 'json', encoding: string | undefined, chunks: Buffer[]): Promise<UsageFacts> {
  const tap = createUsageTap(kind, encoding)
  for (const chunk of chunks) tap.data(chunk)
  return new Promise((resolve) => tap.end(resolve))
}

function splitEvery (buffer: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < buffer.length; i += size) out.push(buffer.subarray(i, i + size))
  return out
}

describe('createUsageTap', () => {
  test('reads usage from message_start and the last message_delta, stop reason and first token, across any chunking', async () => {
    for (const size of [1, 7, 64, fixture.length]) {
      const facts = await run('sse', undefined, splitEvery(fixture, size))
      expect(facts.model).toBe('claude-fable-5')
      expect(facts.usage).toEqual({ inputTokens: 28, outputTokens: 106, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 })
      expect(facts.stopReason).toBe('end_turn')
      expect(facts.firstTokenAt).toBeGreaterThan(0)
      expect(facts.events).toBe(12)
      expect(facts.streamErrorType).toBeUndefined()
    }
  })

  test('cache counters and a mid-stream error', async () => {
    const text = [
      'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-opus-4-8","usage":{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}\n\n',
      'event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"}}\n\n',
    ].join('')
    const facts = await run('sse', undefined, [Buffer.from(text)])
    expect(facts.usage).toEqual({ inputTokens: 5, outputTokens: 3, cacheCreationInputTokens: 100, cacheReadInputTokens: 2000 })
    expect(facts.streamErrorType).toBe('overloaded_error')
  })

  test('usage objects with nested fields, a null stop_reason then a real one, and pretty-printed events with usage before model', async () => {
    const text = [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-8","content":[],"stop_reason":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":7,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":7,"ephemeral_1h_input_tokens":0},"output_tokens":1,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"}}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":{"output_tokens":4}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":9,"server_tool_use":{"web_search_requests":1}}}\n\n',
    ].join('')
    const facts = await run('sse', undefined, [Buffer.from(text)])
    expect(facts.model).toBe('claude-opus-4-8')
    expect(facts.usage).toEqual({ inputTokens: 12, outputTokens: 9, cacheCreationInputTokens: 7, cacheReadInputTokens: 0 })
    expect(facts.stopReason).toBe('tool_use')
    // Pretty-printed, with the usage object before the model.
    const pretty = 'event: message_start\ndata: {"message": {"usage": {"input_tokens": 3, "output_tokens": 1}, "model": "claude-x", "type": "message"}, "type": "message_start"}\n\n'
    const other = await run('sse', undefined, [Buffer.from(pretty)])
    expect(other.model).toBe('claude-x')
    expect(other.usage?.inputTokens).toBe(3)
  })

  test('decompresses its own copy of gzip (flushed per event) and brotli streams', async () => {
    const gzip = createGzip()
    const parts: Buffer[] = []
    gzip.on('data', (chunk: Buffer) => parts.push(chunk))
    for (const event of fixture.toString().split(/(?<=\n\n)/)) {
      gzip.write(event)
      await new Promise<void>((resolve) => gzip.flush(constants.Z_SYNC_FLUSH, () => resolve()))
    }
    await new Promise<void>((resolve) => gzip.end(resolve))
    const gz = await run('sse', 'gzip', parts)
    expect(gz.usage?.outputTokens).toBe(106)
    const br = await run('sse', 'br', splitEvery(brotliCompressSync(fixture), 50))
    expect(br.usage?.outputTokens).toBe(106)
    expect(br.model).toBe('claude-fable-5')
  })

  test('SSE: usage, model and stop reason agree with every event parsed whole, whatever the layout', async () => {
    interface Raw { input_tokens?: unknown, output_tokens?: unknown, cache_creation_input_tokens?: unknown, cache_read_input_tokens?: unknown }
    const apply = (target: Record<string, number>, raw: Raw | null | undefined): void => {
      if (raw === undefined || raw === null) return
      if (typeof raw.input_tokens === 'number') target.inputTokens = raw.input_tokens
      if (typeof raw.output_tokens === 'number') target.outputTokens = raw.output_tokens
      if (typeof raw.cache_creation_input_tokens === 'number') target.cacheCreationInputTokens = raw.cache_creation_input_tokens
      if (typeof raw.cache_read_input_tokens === 'number') target.cacheReadInputTokens = raw.cache_read_input_tokens
    }
    // The semantics: message_start sets model and usage; message_delta's counters overwrite (cumulative), its string stop_reason wins.
    const reference = (events: { name: string, data: string }[]) => {
      const facts: { model: unknown, usage: Record<string, number> | undefined, stopReason: string | undefined } = { model: undefined, usage: undefined, stopReason: undefined }
      for (const { name, data: text } of events) {
        let data: { message?: { model?: unknown, usage?: Raw }, usage?: Raw, delta?: { stop_reason?: unknown } } | null
        try { data = JSON.parse(text) } catch { continue }
        if (data === null || typeof data !== 'object') continue
        if (name === 'message_start') {
          facts.model = data.message?.model
          facts.usage = { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }
          apply(facts.usage, data.message?.usage)
        } else {
          facts.usage ??= { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }
          apply(facts.usage, data.usage)
          if (typeof data.delta?.stop_reason === 'string') facts.stopReason = data.delta.stop_reason
        }
      }
      return facts
    }
    const { random, pick } = seededRandom(11)
    const counter = (): unknown => pick([0, 1, 7, 12345, 99999999, null, -3, 1.5, 2e3, '12', true])
    const extra = (): unknown => pick([
      'standard', null, 17, { ephemeral_5m_input_tokens: 3, nested: [1, { output_tokens: 5 }] }, ['a "quoted" } { value', '\\', { input_tokens: 9 }], 'with \\"escapes\\" and \u00e9',
    ])
    const usage = (): Record<string, unknown> => {
      const out: Record<string, unknown> = {}
      for (const key of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'service_tier', 'cache_creation', 'server_tool_use'].sort(() => random(3) - 1)) {
        if (random(4) === 0) continue
        out[key] = key.endsWith('tokens') ? counter() : extra()
      }
      return out
    }
    // A key written with a JSON escape (the same name to JSON.parse), now and then.
    const escapeKeys = (text: string): string => random(12) === 0 ? text.replace('"model"', '"mod\\u0065l"') : random(12) === 0 ? text.replace('"usage"', '"usag\\u0065"') : text
    for (let round = 0; round < 400; round++) {
      const events: { name: string, data: string }[] = []
      const message: Record<string, unknown> = { id: 'msg_x', type: 'message', role: 'assistant' }
      if (random(8) !== 0) message.model = pick(['claude-opus-4-8', 'claude-"quoted"', 'claude-\u00e9', null, 5])
      message.content = pick([[], [{ type: 'text', text: '} {"usage":{"input_tokens":1}}' }]])
      message.stop_reason = null
      if (random(8) !== 0) message.usage = random(10) === 0 ? null : usage()
      const space = pick([undefined, 1, '\t'])
      events.push({ name: 'message_start', data: escapeKeys(JSON.stringify(random(10) === 0 ? { message, type: 'message_start' } : { type: 'message_start', message }, null, space)) })
      for (let d = random(3); d >= 0; d--) {
        const delta: Record<string, unknown> = { type: 'message_delta' }
        if (random(6) !== 0) delta.delta = random(8) === 0 ? null : { stop_reason: pick(['end_turn', 'tool_use', null, 'x\\"y', 3]), stop_sequence: null }
        if (random(6) !== 0) delta.usage = random(10) === 0 ? pick([null, 5, 'x', [], true]) : usage()
        if (random(5) === 0) delta.context_management = { applied_edits: [{ type: 'clear', cleared: [1, 2] }] }
        events.push({ name: 'message_delta', data: escapeKeys(JSON.stringify(delta, null, pick([undefined, 2]))) })
      }
      if (random(20) === 0) events.push({ name: 'message_delta', data: '{"type":"message_delta","usage":{"output_tokens":4}' }) // truncated: ignored
      if (random(20) === 0) events.push({ name: 'message_delta', data: `{"type":"message_delta","usage":{"output_tokens":4}}${pick([' x', '}', ',{}', ' '])}` }) // not JSON: ignored
      const text = events.map(({ name, data }) => `event: ${name}\ndata: ${data}\n\n`).join('')
      const bytes = Buffer.from(text, 'latin1')
      const facts = await run('sse', undefined, splitEvery(bytes, 1 + random(bytes.length)))
      const expected = reference(events)
      expect({ model: facts.model, usage: facts.usage, stopReason: facts.stopReason }).toEqual(expected)
    }
  })

  test('JSON messages: usage, model and stop reason from the body', async () => {
    const body = Buffer.from(JSON.stringify({ id: 'msg_1', type: 'message', model: 'claude-haiku-4-5', stop_reason: 'max_tokens', usage: { input_tokens: 12, output_tokens: 34, cache_read_input_tokens: 56 } }))
    const facts = await run('json', undefined, splitEvery(body, 10))
    expect(facts).toMatchObject({ model: 'claude-haiku-4-5', stopReason: 'max_tokens', usage: { inputTokens: 12, outputTokens: 34, cacheCreationInputTokens: 0, cacheReadInputTokens: 56 } })
    const notMessage = await run('json', undefined, [Buffer.from('{"type":"error","error":{"type":"api_error"}}')])
    expect(notMessage.usage).toBeUndefined()
  })

  test('JSON: usage is read from the last "usage" key, not from a tool input that has one', async () => {
    const body = Buffer.from(JSON.stringify({
      id: 'msg_2', type: 'message', role: 'assistant', model: 'claude-opus-4-8',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'report', input: { model: 'fake-model', usage: { input_tokens: 999 }, text: 'braces } { and "quotes" \\ inside' } }],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 7, output_tokens: 8, cache_creation_input_tokens: 9, cache_read_input_tokens: 10, cache_creation: { ephemeral_5m_input_tokens: 9 } },
    }))
    const facts = await run('json', undefined, [body])
    expect(facts).toMatchObject({ model: 'claude-opus-4-8', stopReason: 'tool_use', usage: { inputTokens: 7, outputTokens: 8, cacheCreationInputTokens: 9, cacheReadInputTokens: 10 } })
    // Pretty-printed bodies work too.
    const pretty = await run('json', undefined, [Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 2))])
    expect(pretty.usage).toEqual(facts.usage)
    expect(pretty.model).toBe('claude-opus-4-8')
  })

  test('JSON: the counters read in place agree with JSON.parse for any key order, nesting and spacing', async () => {
    const extras: Record<string, unknown>[] = [
      {},
      { cache_creation: { ephemeral_5m_input_tokens: 3, ephemeral_1h_input_tokens: 0 } },
      { server_tool_use: { web_search_requests: 2 }, service_tier: 'standard' },
      { input_tokens_note: 'a "quoted" } { value', tiers: [1, [2, { output_tokens: 77 }], 'x'], flag: true, other: false },
    ]
    let seed = 7
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
    for (let round = 0; round < 200; round++) {
      const counters: Record<string, number | null> = {
        input_tokens: random(100000),
        output_tokens: random(5000),
        cache_creation_input_tokens: random(3) === 0 ? null : random(900),
        cache_read_input_tokens: random(40000),
      }
      const keys = Object.keys(counters).filter(() => random(5) !== 0)
      const usage: Record<string, unknown> = { ...extras[random(extras.length)] }
      for (const key of keys.sort(() => random(3) - 1)) usage[key] = counters[key]
      const message = { id: 'msg_x', type: 'message', role: 'assistant', model: 'claude-opus-4-8', content: [{ type: 'text', text: 'y'.repeat(random(2000)) }], stop_reason: 'end_turn', stop_sequence: null, usage }
      const body = Buffer.from(JSON.stringify(message, null, [0, 2, '\t'][random(3)] as number | string))
      const expected = JSON.parse(body.toString()).usage as Record<string, number | null | undefined>
      const facts = await run('json', undefined, splitEvery(body, 1 + random(body.length)))
      expect(facts.usage).toEqual({
        inputTokens: expected.input_tokens ?? 0,
        outputTokens: expected.output_tokens ?? 0,
        cacheCreationInputTokens: expected.cache_creation_input_tokens ?? 0,
        cacheReadInputTokens: expected.cache_read_input_tokens ?? 0,
      })
      expect(facts.model).toBe('claude-opus-4-8')
      expect(facts.stopReason).toBe('end_turn')
    }
  })

  test('JSON: a body laid out otherwise is parsed whole; a truncated or foreign one yields no usage', async () => {
    // `model` beyond the first bytes: read by parsing the whole body.
    const late = Buffer.from(JSON.stringify({ id: 'm'.repeat(600), type: 'message', model: 'claude-late', usage: { input_tokens: 4, output_tokens: 5 }, stop_reason: 'max_tokens' }))
    expect(await run('json', undefined, [late])).toMatchObject({ model: 'claude-late', stopReason: 'max_tokens', usage: { inputTokens: 4, outputTokens: 5 } })
    // A counter that is not a plain integer: the whole body is parsed, so the value is still read.
    const odd = Buffer.from('{"type":"message","model":"claude-odd","usage":{"input_tokens":-1,"output_tokens":2}}')
    expect((await run('json', undefined, [odd])).usage).toEqual({ inputTokens: -1, outputTokens: 2, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 })
    // A counter repeated: the last member wins, as JSON.parse keeps it, whatever its kind.
    for (const [last, expected] of [['null', 0], ['"9"', 0], ['{"n":1}', 0], ['true', 0], ['8', 8]] as const) {
      const repeated = Buffer.from(`{"type":"message","model":"claude-twice","usage":{"input_tokens":5,"output_tokens":2,"input_tokens":${last}}}`)
      expect((await run('json', undefined, [repeated])).usage).toEqual({ inputTokens: expected, outputTokens: 2, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 })
    }
    const truncated = Buffer.from('{"type":"message","model":"claude-cut","usage":{"input_tokens":12,"output_tok')
    expect((await run('json', undefined, [truncated])).usage).toBeUndefined()
    const list = Buffer.from(JSON.stringify({ data: Array.from({ length: 40 }, (_, i) => ({ type: 'model', id: `claude-${i}`, usage: { input_tokens: i } })), has_more: false }))
    expect((await run('json', undefined, [list])).usage).toBeUndefined()
  })

  test('garbage does not throw', async () => {
    const facts = await run('sse', 'gzip', [Buffer.from('not gzip at all')])
    expect(facts.usage).toBeUndefined()
    const broken = await run('sse', undefined, [Buffer.from('event: message_start\ndata: {oops\n\n')])
    expect(broken.usage).toBeUndefined()
    // JSON that is not an object, an event with no data line, an unknown event, a bare field.
    const odd = await run('sse', undefined, [Buffer.from('event: message_start\ndata: null\n\nevent: message_delta\n\nevent: ping\ndata: {}\n\nevent:\n\nevent: message_delta\ndata: 7\n\n')])
    expect(odd.usage).toBeUndefined()
    expect(odd.events).toBe(5)
  })

  test('an event\'s end is the first blank line, as Buffer.indexOf finds it, in every layout of newlines', () => {
    // Every buffer of up to 12 bytes drawn from newline and one other byte, searched from every
    // offset: both parities, runs of newlines, a pair at either end.
    for (let length = 0; length <= 12; length++) {
      for (let bits = 0; bits < 2 ** length; bits++) {
        const bytes = Buffer.alloc(length, 0x61)
        for (let i = 0; i < length; i++) if ((bits >> i) & 1) bytes[i] = 0x0a
        for (let from = 0; from <= length; from++) {
          const expected = bytes.indexOf('\n\n', from)
          if (eventEnd(bytes, from) !== expected) throw new Error(`eventEnd(${JSON.stringify(bytes.toString())}, ${from}) is ${eventEnd(bytes, from)}, not ${expected}`)
        }
      }
    }
    // Long spans (past the short-span loop) and a real event's layout.
    const event = Buffer.from(`event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${'x'.repeat(600)}"}}\n\nevent: ping\n\n`)
    for (const from of [0, 1, 2, 27, 640]) expect(eventEnd(event, from)).toBe(event.indexOf('\n\n', from))
  })
})
