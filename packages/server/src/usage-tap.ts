import { createBrotliDecompress, createGunzip, createInflate, type Gunzip } from 'node:zlib'

/** Token usage as the API reports it (ANTHROPIC_API.md §7.2). */
export interface TokenUsage {
  inputTokens: number
  outputTokens: number
  cacheCreationInputTokens: number
  cacheReadInputTokens: number
}

/** What a side tap learned about one response. */
export interface UsageFacts {
  model: string | undefined
  usage: TokenUsage | undefined
  /** performance.now() of the first content_block_delta (streams only), or -1. */
  firstTokenAt: number
  stopReason: string | undefined
  /** `error.type` of a mid-stream `event: error`, if any. */
  streamErrorType: string | undefined
  /** SSE events seen (streams only). */
  events: number
}

export interface UsageTap {
  data (chunk: Buffer): void
  /** Calls back once every byte (and any decompression) has been looked at: synchronously when nothing was compressed. */
  end (callback: (facts: UsageFacts) => void): void
}

interface RawUsage {
  input_tokens?: number | null
  output_tokens?: number | null
  cache_creation_input_tokens?: number | null
  cache_read_input_tokens?: number | null
}

const MAX_JSON_BYTES = 8 * 1024 * 1024

function applyUsage (target: TokenUsage, raw: RawUsage | undefined): void {
  if (raw === undefined || raw === null) return
  // message_delta usage is cumulative: overwrite when present, never add.
  if (typeof raw.input_tokens === 'number') target.inputTokens = raw.input_tokens
  if (typeof raw.output_tokens === 'number') target.outputTokens = raw.output_tokens
  if (typeof raw.cache_creation_input_tokens === 'number') target.cacheCreationInputTokens = raw.cache_creation_input_tokens
  if (typeof raw.cache_read_input_tokens === 'number') target.cacheReadInputTokens = raw.cache_read_input_tokens
}

function emptyUsage (): TokenUsage {
  return { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }
}

function safeParse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Reads SSE events from a copy of the stream's bytes. Only `message_start`,
 * `message_delta` and `error` data are parsed; the first `content_block_delta`
 * is noted by name alone. Bytes are decoded as latin1: every field read is ASCII.
 */
class SseReader {
  readonly facts: UsageFacts = { model: undefined, usage: undefined, firstTokenAt: -1, stopReason: undefined, streamErrorType: undefined, events: 0 }
  #pending = ''

  push (text: string): void {
    let buffer = this.#pending === '' ? text : this.#pending + text
    let boundary = buffer.indexOf('\n\n')
    while (boundary !== -1) {
      this.#event(buffer.slice(0, boundary))
      buffer = buffer.slice(boundary + 2)
      boundary = buffer.indexOf('\n\n')
    }
    this.#pending = buffer
  }

  #event (block: string): void {
    const start = block.startsWith('event: ') ? 7 : block.startsWith('event:') ? 6 : -1
    if (start === -1) return
    this.facts.events++
    const lineEnd = block.indexOf('\n', start)
    const name = lineEnd === -1 ? block.slice(start) : block.slice(start, lineEnd)
    if (name === 'content_block_delta') {
      if (this.facts.firstTokenAt < 0) this.facts.firstTokenAt = performance.now()
      return
    }
    if (name !== 'message_start' && name !== 'message_delta' && name !== 'error') return
    const dataAt = block.indexOf('data:', lineEnd)
    if (dataAt === -1) return
    const data = safeParse(block.slice(dataAt + 5)) as {
      message?: { model?: string, usage?: RawUsage }
      usage?: RawUsage
      delta?: { stop_reason?: string | null }
      error?: { type?: string }
    } | undefined
    if (data === undefined) return
    if (name === 'message_start') {
      this.facts.model = data.message?.model
      this.facts.usage = emptyUsage()
      applyUsage(this.facts.usage, data.message?.usage)
    } else if (name === 'message_delta') {
      this.facts.usage ??= emptyUsage()
      applyUsage(this.facts.usage, data.usage)
      if (typeof data.delta?.stop_reason === 'string') this.facts.stopReason = data.delta.stop_reason
    } else {
      this.facts.streamErrorType = data.error?.type ?? 'unknown'
    }
  }
}

const MESSAGE_TYPE = /^\s*\{[^{]*?"type"\s*:\s*"message"/
const MODEL = /"model"\s*:\s*"([^"\\]{0,200})"/
const STOP_REASON = /^"stop_reason"\s*:\s*"([a-z_]{1,64})"/

/**
 * Usage facts of a non-streaming Message without parsing the whole body (a long
 * answer can be megabytes): the API writes `model` before `content` and `usage`
 * last, so `model` is the first such key, and `usage` the last `"usage"` key,
 * whose object alone is parsed. Falls back to a full parse when that fails.
 * Text is latin1-decoded: every field read is ASCII.
 */
export function readMessageFacts (text: string, facts: UsageFacts): UsageFacts {
  if (!MESSAGE_TYPE.test(text)) return facts
  const usageKey = text.lastIndexOf('"usage"')
  const open = usageKey === -1 ? -1 : text.indexOf('{', usageKey)
  const close = open === -1 ? -1 : matchingBrace(text, open)
  const usage = close === -1 ? undefined : safeParse(text.slice(open, close + 1)) as RawUsage | undefined
  if (usage === undefined) {
    const body = safeParse(text) as { type?: string, model?: string, usage?: RawUsage, stop_reason?: string } | undefined
    if (body === undefined || body.type !== 'message') return facts
    facts.model = body.model
    facts.usage = emptyUsage()
    applyUsage(facts.usage, body.usage)
    facts.stopReason = body.stop_reason ?? undefined
    return facts
  }
  facts.model = MODEL.exec(text)?.[1]
  facts.usage = emptyUsage()
  applyUsage(facts.usage, usage)
  const stopKey = text.lastIndexOf('"stop_reason"')
  if (stopKey !== -1) facts.stopReason = STOP_REASON.exec(text.slice(stopKey, stopKey + 100))?.[1]
  return facts
}

/** Index of the `}` closing the object that opens at `open`, skipping strings; -1 if unbalanced. */
function matchingBrace (text: string, open: number): number {
  let depth = 0
  for (let i = open; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code === 0x22) { // "
      for (i++; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c === 0x5c) i++ // backslash: skip the escaped character
        else if (c === 0x22) break
      }
    } else if (code === 0x7b) {
      depth++
    } else if (code === 0x7d && --depth === 0) {
      return i
    }
  }
  return -1
}

function decompressorFor (encoding: string | undefined): Gunzip | null {
  if (encoding === undefined) return null
  const value = encoding.trim().toLowerCase()
  if (value === 'gzip' || value === 'x-gzip') return createGunzip()
  if (value === 'br') return createBrotliDecompress() as unknown as Gunzip
  if (value === 'deflate') return createInflate() as unknown as Gunzip
  return null
}

/**
 * A tap on an SSE stream or a JSON message: sees a copy of each chunk after it
 * was forwarded, decompresses its own copy when the upstream compressed, and
 * never touches the forwarded bytes.
 */
export function createUsageTap (kind: 'sse' | 'json', contentEncoding: string | undefined): UsageTap {
  return new Tap(kind, contentEncoding)
}

/**
 * One tap per response, held as long as the response lasts (a stream can last minutes): a class,
 * so an open stream holds one object and its fields, not a set of closures and their contexts.
 */
class Tap implements UsageTap {
  readonly #decompressor: Gunzip | null
  readonly #reader: SseReader | null
  readonly #jsonChunks: Buffer[] | null
  #jsonBytes = 0
  #decompressFailed = false

  constructor (kind: 'sse' | 'json', contentEncoding: string | undefined) {
    this.#decompressor = decompressorFor(contentEncoding)
    this.#reader = kind === 'sse' ? new SseReader() : null
    this.#jsonChunks = kind === 'sse' ? null : []
    if (this.#decompressor !== null) {
      this.#decompressor.on('data', (chunk: Buffer) => { this.#consume(chunk) })
      this.#decompressor.on('error', () => { this.#decompressFailed = true })
    }
  }

  data (chunk: Buffer): void {
    if (this.#decompressor === null) this.#consume(chunk)
    else if (!this.#decompressFailed) this.#decompressor.write(chunk)
  }

  end (callback: (facts: UsageFacts) => void): void {
    const decompressor = this.#decompressor
    if (decompressor === null || this.#decompressFailed) {
      callback(this.#finish())
      return
    }
    let called = false
    const done = (): void => {
      if (called) return
      called = true
      callback(this.#finish())
    }
    decompressor.once('end', done)
    decompressor.once('error', done)
    decompressor.end()
  }

  #consume (chunk: Buffer): void {
    if (this.#reader !== null) {
      this.#reader.push(chunk.toString('latin1'))
    } else if (this.#jsonChunks !== null && this.#jsonBytes <= MAX_JSON_BYTES) {
      this.#jsonBytes += chunk.length
      this.#jsonChunks.push(chunk)
    }
  }

  #finish (): UsageFacts {
    if (this.#reader !== null) return this.#reader.facts
    const facts: UsageFacts = { model: undefined, usage: undefined, firstTokenAt: -1, stopReason: undefined, streamErrorType: undefined, events: 0 }
    const chunks = this.#jsonChunks
    if (chunks === null || this.#jsonBytes === 0 || this.#jsonBytes > MAX_JSON_BYTES) return facts
    const text = (chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks)).toString('latin1')
    return readMessageFacts(text, facts)
  }
}
