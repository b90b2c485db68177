import type { EmulatorScenario } from './controls.js'
import { createId } from './ids.js'

/** Per-request values of a rendered message. */
export interface MessageUsageInput {
  id: string
  model: string
  inputTokens: number
  cacheCreationInputTokens: number
  cacheReadInputTokens: number
}

/**
 * Everything about an emulated message that depends only on the content
 * controls, precomputed once and shared by every response with those controls.
 */
export interface MessageScript {
  /** JSON of the final `content` array, for non-streaming responses. */
  readonly contentJson: string
  readonly stopReason: 'end_turn' | 'tool_use'
  /** Number of `content_block_delta` events, reported as `output_tokens`. */
  readonly outputTokens: number
  /** `content_block_start` … `content_block_stop` of every block, `ping` after the first start. */
  readonly blockEvents: readonly Buffer[]
  /** `blockEvents` as one buffer. */
  readonly blocks: Buffer
  /** `blockEvents`, the `{"output_tokens":N}` `message_delta` and `message_stop`, as one buffer. */
  readonly tail: Buffer
  /** `message_delta` with `{"output_tokens":N}` usage. */
  readonly outputDelta: Buffer
  readonly messageStop: Buffer
}

export interface MessageScriptKey {
  scenario: EmulatorScenario
  deltas: number
  deltaSize: number
  toolName: string
}

const TEXT_FILLER = 'The quick brown fox jumps over the lazy dog while the emulator streams tokens. '
const THINKING_FILLER = 'Let me think about this step by step before answering the question. '
const QUERY_FILLER = 'weather in Paris today and tomorrow '
const SIGNATURE = 'RW11bGF0ZWQgdGhpbmtpbmcgc2lnbmF0dXJlIGZyb20gdGhlIGFwdCBlbXVsYXRvcg=='
const CITED_TEXT = 'The quick brown fox'

interface ScriptedBlock {
  /** `content_block_start.content_block` */
  start: object
  /** `content_block_delta.delta` payloads in order. */
  deltas: object[]
  /** The block as it appears in a non-streaming `Message.content`. */
  final: object
}

/** `event: NAME\ndata: JSON\n\n` */
export function sseEvent(name: string, json: string): Buffer {
  return Buffer.from(`event: ${name}\ndata: ${json}\n\n`)
}

function fill(filler: string, length: number): string {
  return filler.repeat(Math.ceil(length / filler.length)).slice(0, length)
}

/** Splits `value` into exactly `count` consecutive pieces (trailing pieces may be empty). */
function split(value: string, count: number): string[] {
  if (count === 0) return []
  const size = Math.ceil(value.length / count)
  return Array.from({ length: count }, (_, index) => value.slice(index * size, (index + 1) * size))
}

function textBlock(deltas: number, deltaSize: number, cited: boolean): ScriptedBlock {
  const pieces = split(fill(TEXT_FILLER, deltas * deltaSize), deltas)
  const text = pieces.join('')
  const citation = {
    type: 'char_location',
    cited_text: CITED_TEXT,
    document_index: 0,
    document_title: 'Emulated document',
    start_char_index: 0,
    end_char_index: CITED_TEXT.length,
  }
  const textDeltas = pieces.map((piece) => ({ type: 'text_delta', text: piece }))
  if (!cited) return { start: { type: 'text', text: '' }, deltas: textDeltas, final: { type: 'text', text } }
  return {
    start: { type: 'text', text: '' },
    deltas: [{ type: 'citations_delta', citation }, ...textDeltas],
    final: { type: 'text', text, citations: [citation] },
  }
}

function thinkingBlock(deltas: number, deltaSize: number): ScriptedBlock {
  const pieces = split(fill(THINKING_FILLER, deltas * deltaSize), deltas)
  return {
    start: { type: 'thinking', thinking: '', signature: '' },
    deltas: [...pieces.map((piece) => ({ type: 'thinking_delta', thinking: piece })), { type: 'signature_delta', signature: SIGNATURE }],
    final: { type: 'thinking', thinking: pieces.join(''), signature: SIGNATURE },
  }
}

function toolUseBlock(deltas: number, deltaSize: number, toolName: string): ScriptedBlock {
  const id = createId('toolu_')
  const prefix = '{"query":"'
  const suffix = '"}'
  const query = fill(QUERY_FILLER, Math.max(0, deltas * deltaSize - prefix.length - suffix.length))
  const json = deltas === 0 ? '' : `${prefix}${query}${suffix}`
  return {
    start: { type: 'tool_use', id, name: toolName, input: {} },
    deltas: split(json, deltas).map((piece) => ({ type: 'input_json_delta', partial_json: piece })),
    final: { type: 'tool_use', id, name: toolName, input: deltas === 0 ? {} : { query } },
  }
}

function scriptBlocks({ scenario, deltas, deltaSize, toolName }: MessageScriptKey): ScriptedBlock[] {
  switch (scenario) {
    case 'text':
      return [textBlock(deltas, deltaSize, false)]
    case 'tool_use':
      return [textBlock(deltas, deltaSize, false), toolUseBlock(deltas, deltaSize, toolName)]
    case 'thinking':
      return [thinkingBlock(deltas, deltaSize), textBlock(deltas, deltaSize, false)]
    case 'citations':
      return [textBlock(deltas, deltaSize, true)]
    case 'all':
      return [thinkingBlock(deltas, deltaSize), textBlock(deltas, deltaSize, true), toolUseBlock(deltas, deltaSize, toolName)]
  }
}

const MESSAGE_STOP = sseEvent('message_stop', '{"type":"message_stop"}')
const PING = sseEvent('ping', '{"type": "ping"}')

function buildScript(key: MessageScriptKey): MessageScript {
  const blocks = scriptBlocks(key)
  const blockEvents: Buffer[] = []
  let outputTokens = 0
  blocks.forEach((block, index) => {
    blockEvents.push(sseEvent('content_block_start', JSON.stringify({ type: 'content_block_start', index, content_block: block.start })))
    if (index === 0) blockEvents.push(PING)
    for (const delta of block.deltas) {
      blockEvents.push(sseEvent('content_block_delta', JSON.stringify({ type: 'content_block_delta', index, delta })))
      outputTokens++
    }
    blockEvents.push(sseEvent('content_block_stop', JSON.stringify({ type: 'content_block_stop', index })))
  })
  const stopReason = blocks.some((block) => (block.final as { type: string }).type === 'tool_use') ? 'tool_use' : 'end_turn'
  const outputDelta = sseEvent('message_delta', renderMessageDeltaJson(stopReason, outputTokens, undefined))
  return {
    contentJson: JSON.stringify(blocks.map((block) => block.final)),
    stopReason,
    outputTokens,
    blockEvents,
    blocks: Buffer.concat(blockEvents),
    tail: Buffer.concat([...blockEvents, outputDelta, MESSAGE_STOP]),
    outputDelta,
    messageStop: MESSAGE_STOP,
  }
}

/**
 * A bounded cache of scripts keyed by their content controls, so streaming a
 * known control set costs one small `message_start` render plus one buffer write.
 */
export class MessageScriptCache {
  readonly #scripts = new Map<string, MessageScript>()
  readonly #limit: number

  constructor(limit = 256) {
    this.#limit = limit
  }

  get(key: MessageScriptKey): MessageScript {
    const cacheKey = `${key.scenario}\u0000${key.deltas}\u0000${key.deltaSize}\u0000${key.toolName}`
    let script = this.#scripts.get(cacheKey)
    if (script === undefined) {
      script = buildScript(key)
      if (this.#scripts.size >= this.#limit) this.#scripts.clear()
      this.#scripts.set(cacheKey, script)
    }
    return script
  }
}

function usageJson(usage: MessageUsageInput, outputTokens: number): string {
  return (
    `{"input_tokens":${usage.inputTokens},"cache_creation_input_tokens":${usage.cacheCreationInputTokens},` +
    `"cache_read_input_tokens":${usage.cacheReadInputTokens},"output_tokens":${outputTokens},"service_tier":"standard"}`
  )
}

/** The full non-streaming `Message` JSON. */
export function renderMessageJson(script: MessageScript, usage: MessageUsageInput): string {
  return (
    `{"id":"${usage.id}","type":"message","role":"assistant","model":${JSON.stringify(usage.model)},` +
    `"content":${script.contentJson},"stop_reason":"${script.stopReason}","stop_sequence":null,` +
    `"usage":${usageJson(usage, script.outputTokens)}}`
  )
}

/** `message_start` event: empty content, final input-side usage, placeholder `output_tokens: 1`. */
export function renderMessageStart(usage: MessageUsageInput): Buffer {
  return sseEvent(
    'message_start',
    `{"type":"message_start","message":{"id":"${usage.id}","type":"message","role":"assistant",` +
      `"model":${JSON.stringify(usage.model)},"content":[],"stop_reason":null,"stop_sequence":null,` +
      `"usage":${usageJson(usage, 1)}}}`,
  )
}

function renderMessageDeltaJson(stopReason: string, outputTokens: number, usage: MessageUsageInput | undefined): string {
  const usageFields =
    usage === undefined
      ? `{"output_tokens":${outputTokens}}`
      : `{"input_tokens":${usage.inputTokens},"cache_creation_input_tokens":${usage.cacheCreationInputTokens},` +
        `"cache_read_input_tokens":${usage.cacheReadInputTokens},"output_tokens":${outputTokens}}`
  return `{"type":"message_delta","delta":{"stop_reason":"${stopReason}","stop_sequence":null},"usage":${usageFields}}`
}

/** `message_delta` repeating the input-side counters (the `full` delta-usage style). */
export function renderFullMessageDelta(script: MessageScript, usage: MessageUsageInput): Buffer {
  return sseEvent('message_delta', renderMessageDeltaJson(script.stopReason, script.outputTokens, usage))
}
