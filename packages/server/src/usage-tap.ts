import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
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

const EVENT_FIELD = Buffer.from('event:')
const DATA_FIELD = Buffer.from('data:')
const EVENT_END = Buffer.from('\n\n')
const CONTENT_BLOCK_DELTA = Buffer.from('content_block_delta')
const MESSAGE_START = Buffer.from('message_start')
const MESSAGE_DELTA = Buffer.from('message_delta')
const ERROR_EVENT = Buffer.from('error')

/** Spans longer than this are searched by the binding (memchr); shorter ones in a loop, without a call into C++. */
const SHORT_SPAN = 512

/**
 * Where the first blank line ending an event (`\n\n`) starts in `bytes` from `from`, or -1.
 * Exported for its tests.
 */
export function eventEnd (bytes: Buffer, from: number): number {
  const length = bytes.length
  if (length - 1 - from > SHORT_SPAN) return bytes.indexOf(EVENT_END, from)
  // Two newlines side by side always put one on every second byte from `from + 1`: look only
  // there, then at its neighbours (the earlier one first, so the first pair wins).
  for (let i = from + 1; i < length; i += 2) {
    if (bytes[i] !== 0x0a) continue
    if (bytes[i - 1] === 0x0a) return i - 1
    if (i + 1 < length && bytes[i + 1] === 0x0a) return i
  }
  return -1
}

/** `bytes[at, at + length)` is `word`. */
function bytesEqual (bytes: Buffer, at: number, length: number, word: Buffer): boolean {
  if (length !== word.length) return false
  for (let i = 0; i < length; i++) if (bytes[at + i] !== word[i]) return false
  return true
}

/**
 * Reads SSE events from a copy of the stream's bytes, in place: an event's name is compared as
 * bytes, and only `message_start`, `message_delta` and `error` data are decoded (as latin1:
 * every field read is ASCII) and parsed. The first `content_block_delta` is noted by name alone.
 * Most reads carry whole events; the bytes of an event split across reads wait for the rest.
 */
class SseReader {
  readonly facts: UsageFacts = { model: undefined, usage: undefined, firstTokenAt: -1, stopReason: undefined, streamErrorType: undefined, events: 0 }
  #pending: Buffer | null = null

  push (chunk: Buffer): void {
    const bytes = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk])
    this.#pending = null
    let start = 0
    let boundary = eventEnd(bytes, 0)
    while (boundary !== -1) {
      this.#event(bytes, start, boundary)
      start = boundary + 2
      boundary = eventEnd(bytes, start)
    }
    // A copy: the chunk's memory is the forwarded response's.
    if (start < bytes.length) this.#pending = Buffer.from(bytes.subarray(start))
  }

  /** The event whose bytes are `bytes[start, end)` (without its blank line). */
  #event (bytes: Buffer, start: number, end: number): void {
    if (end - start < EVENT_FIELD.length || !bytesEqual(bytes, start, EVENT_FIELD.length, EVENT_FIELD)) return
    const nameAt = bytes[start + EVENT_FIELD.length] === 0x20 ? start + EVENT_FIELD.length + 1 : start + EVENT_FIELD.length
    this.facts.events++
    // The name's line ends at its newline, or at the event's end.
    let lineEnd = nameAt
    while (lineEnd < end && bytes[lineEnd] !== 0x0a) lineEnd++
    const nameLength = lineEnd - nameAt
    if (bytesEqual(bytes, nameAt, nameLength, CONTENT_BLOCK_DELTA)) {
      if (this.facts.firstTokenAt < 0) this.facts.firstTokenAt = performance.now()
      return
    }
    const name = bytesEqual(bytes, nameAt, nameLength, MESSAGE_START)
      ? 'message_start'
      : bytesEqual(bytes, nameAt, nameLength, MESSAGE_DELTA) ? 'message_delta' : bytesEqual(bytes, nameAt, nameLength, ERROR_EVENT) ? 'error' : null
    if (name === null) return
    const dataAt = bytes.indexOf(DATA_FIELD, lineEnd)
    if (dataAt === -1 || dataAt >= end) return
    const data = safeParse(bytes.toString('latin1', dataAt + DATA_FIELD.length, end)) as {
      message?: { model?: string, usage?: RawUsage }
      usage?: RawUsage
      delta?: { stop_reason?: string | null }
      error?: { type?: string }
    } | undefined | null
    if (data === undefined || data === null || typeof data !== 'object') return
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
const TYPE_MESSAGE = Buffer.from('"type":"message"')
const MODEL_KEY = Buffer.from('"model"')
const USAGE_KEY = Buffer.from('"usage"')
const STOP_REASON_KEY = Buffer.from('"stop_reason"')
const STOP_REASON_VALUE = /^[a-z_]+$/

/**
 * Usage facts of a non-streaming Message, read from its bytes in place: no string of the body,
 * no parse of it (a long answer can be megabytes, and a short one is read on every request).
 * The API writes `type` and `model` before `content`, and `stop_reason` and `usage` after it,
 * so `type` and `model` are the first such keys (before any nested object), `usage` is the last
 * `"usage"` key and `stop_reason` the last `"stop_reason"` key. A body laid out otherwise is
 * parsed whole.
 */
export function readMessageFacts (body: Buffer, facts: UsageFacts): UsageFacts {
  const start = skipSpace(body, 0, body.length)
  const nested = body.indexOf(0x7b, start + 1) // the first nested object: where `content` begins
  const typeAt = body.indexOf(TYPE_MESSAGE)
  const modelAt = body.indexOf(MODEL_KEY)
  const model = body[start] === 0x7b && isBefore(typeAt, nested) && isBefore(modelAt, nested) ? stringValue(body, modelAt + MODEL_KEY.length, 200) : undefined
  const usageKey = model === undefined ? -1 : body.lastIndexOf(USAGE_KEY)
  const colon = usageKey === -1 ? -1 : skipSpace(body, usageKey + USAGE_KEY.length, body.length)
  const open = colon !== -1 && body[colon] === 0x3a ? skipSpace(body, colon + 1, body.length) : -1
  const close = open !== -1 && body[open] === 0x7b ? closingOf(body, open) : -1
  const usage = close === -1 ? undefined : readUsage(body, open, close)
  if (usage === undefined) return readMessageText(body.toString('latin1'), facts)
  facts.model = model
  facts.usage = usage
  const stopKey = body.lastIndexOf(STOP_REASON_KEY)
  if (stopKey !== -1) {
    const reason = stringValue(body, stopKey + STOP_REASON_KEY.length, 64)
    if (reason !== undefined && STOP_REASON_VALUE.test(reason)) facts.stopReason = reason
  }
  return facts
}

/** Found, and before the first nested object (if any). */
function isBefore (at: number, nested: number): boolean {
  return at !== -1 && (nested === -1 || at < nested)
}

/** The string value after a key that ends at `keyEnd` (`: "value"`), if it has no escapes and at most `max` bytes. */
function stringValue (bytes: Buffer, keyEnd: number, max: number): string | undefined {
  let i = skipSpace(bytes, keyEnd, bytes.length)
  if (bytes[i] !== 0x3a) return undefined
  i = skipSpace(bytes, i + 1, bytes.length)
  if (bytes[i] !== 0x22) return undefined
  const from = i + 1
  const limit = Math.min(bytes.length, from + max + 1)
  for (let j = from; j < limit; j++) {
    const c = bytes[j] as number
    if (c === 0x22) return bytes.toString('latin1', from, j)
    if (c === 0x5c) return undefined
  }
  return undefined
}

/** The whole body parsed: for a Message whose bytes are not laid out as the API writes them. */
function readMessageText (text: string, facts: UsageFacts): UsageFacts {
  if (!MESSAGE_TYPE.test(text)) return facts
  const body = safeParse(text) as { type?: string, model?: string, usage?: RawUsage, stop_reason?: string } | undefined
  if (body === undefined || body === null || body.type !== 'message') return facts
  facts.model = body.model
  facts.usage = emptyUsage()
  applyUsage(facts.usage, body.usage)
  facts.stopReason = body.stop_reason ?? undefined
  return facts
}

/**
 * Index of the `}` or `]` closing the object or array that opens at `open`, skipping strings and
 * what is nested inside; -1 if unbalanced or closed by the other kind.
 */
function closingOf (bytes: Buffer, open: number): number {
  let depth = 0
  for (let i = open; i < bytes.length; i++) {
    const code = bytes[i] as number
    if (code === 0x22) { // "
      i = stringEnd(bytes, i)
      if (i === -1) return -1
    } else if (code === 0x7b || code === 0x5b) { // { [
      depth++
    } else if ((code === 0x7d || code === 0x5d) && --depth === 0) { // } ]
      return code - (bytes[open] as number) === 2 ? i : -1 // '{' + 2 is '}', '[' + 2 is ']'
    }
  }
  return -1
}

/** Index of the `"` closing the string that opens at `quote`, or -1. */
function stringEnd (bytes: Buffer, quote: number): number {
  for (let i = quote + 1; i < bytes.length; i++) {
    const c = bytes[i] as number
    if (c === 0x5c) i++ // backslash: skip the escaped byte
    else if (c === 0x22) return i
  }
  return -1
}

const COUNTER_KEYS = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'].map((key) => Buffer.from(`"${key}"`))

/**
 * The four counters of the usage object between `open` and `close` (its braces), read from its
 * top-level keys in place: no string, no parse. A counter that is absent or not a number is 0,
 * and the last member of a name wins (as JSON.parse keeps it). Returns undefined when
 * something there is not plain JSON (the caller then parses it all).
 */
function readUsage (bytes: Buffer, open: number, close: number): TokenUsage | undefined {
  const usage = emptyUsage()
  let i = skipSpace(bytes, open + 1, close)
  if (i === close) return usage
  for (;;) {
    if (bytes[i] !== 0x22) return undefined
    const keyEnd = stringEnd(bytes, i)
    if (keyEnd === -1 || keyEnd > close) return undefined
    const counter = counterOf(bytes, i, keyEnd + 1)
    i = skipSpace(bytes, keyEnd + 1, close)
    if (bytes[i] !== 0x3a) return undefined // :
    i = skipSpace(bytes, i + 1, close)
    const first = bytes[i] as number
    if (first >= 0x30 && first <= 0x39) {
      let value = 0
      while (i < close && (bytes[i] as number) >= 0x30 && (bytes[i] as number) <= 0x39) value = value * 10 + (bytes[i++] as number) - 0x30
      setCounter(usage, counter, value)
    } else if (first === 0x22) {
      const end = stringEnd(bytes, i)
      if (end === -1 || end >= close) return undefined
      i = end + 1
    } else if (first === 0x7b || first === 0x5b) { // { or [: a nested value, skipped whole
      const end = closingOf(bytes, i)
      if (end === -1 || end >= close) return undefined
      i = end + 1
    } else if (first === 0x6e || first === 0x74 || first === 0x66) { // null, true, false
      while (i < close && (bytes[i] as number) >= 0x61 && (bytes[i] as number) <= 0x7a) i++
    } else {
      return undefined
    }
    // A counter that is not a number counts as absent, as JSON.parse would leave it when it repeats one.
    if (first < 0x30 || first > 0x39) setCounter(usage, counter, 0)
    i = skipSpace(bytes, i, close)
    if (i === close) return usage
    if (bytes[i] !== 0x2c) return undefined // ,
    i = skipSpace(bytes, i + 1, close)
  }
}

function setCounter (usage: TokenUsage, counter: number, value: number): void {
  if (counter === 0) usage.inputTokens = value
  else if (counter === 1) usage.outputTokens = value
  else if (counter === 2) usage.cacheCreationInputTokens = value
  else if (counter === 3) usage.cacheReadInputTokens = value
}

/** Which counter the key between `start` and `end` (quotes included) names: 0-3, or -1. */
function counterOf (bytes: Buffer, start: number, end: number): number {
  for (let k = 0; k < COUNTER_KEYS.length; k++) {
    const key = COUNTER_KEYS[k] as Buffer
    if (key.length !== end - start) continue
    let j = 1 // the opening quotes match
    while (j < key.length && key[j] === bytes[start + j]) j++
    if (j === key.length) return k
  }
  return -1
}

function skipSpace (bytes: Buffer, from: number, end: number): number {
  let i = from
  while (i < end) {
    const c = bytes[i] as number
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
    i++
  }
  return i
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
  /** Chunks may be views of a reused buffer (the wire engine's reads): what is kept is copied. */
  readonly copiesData = true
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
    // zlib reads the chunk later, on its thread: a copy.
    else if (!this.#decompressFailed) this.#decompressor.write(Buffer.from(chunk))
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
      this.#reader.push(chunk)
    } else if (this.#jsonChunks !== null && this.#jsonBytes <= MAX_JSON_BYTES) {
      this.#jsonBytes += chunk.length
      // Kept until the response ends: a copy (the chunk may be a view of a reused read buffer).
      this.#jsonChunks.push(this.#decompressor === null ? Buffer.from(chunk) : chunk)
    }
  }

  #finish (): UsageFacts {
    if (this.#reader !== null) return this.#reader.facts
    const facts: UsageFacts = { model: undefined, usage: undefined, firstTokenAt: -1, stopReason: undefined, streamErrorType: undefined, events: 0 }
    const chunks = this.#jsonChunks
    if (chunks === null || this.#jsonBytes === 0 || this.#jsonBytes > MAX_JSON_BYTES) return facts
    return readMessageFacts(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks), facts)
  }
}
