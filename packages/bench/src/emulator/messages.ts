import { invalidRequest } from './api-error.js'
import type { EmulatorControls } from './controls.js'
import type { Exchange } from './exchange.js'
import { createId } from './ids.js'
import {
  type MessageScript,
  type MessageScriptCache,
  type MessageUsageInput,
  renderFullMessageDelta,
  renderMessageJson,
  renderMessageStart,
} from './message-script.js'

/** The request fields the emulator looks at. */
export interface MessageParams {
  model: string
  stream: boolean
  /** `tools[0].name`, used as the emulated tool call's name. */
  toolName: string
}

const DEFAULT_TOOL_NAME = 'get_weather'

/** Parses a JSON request body that must be an object; 400 otherwise. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw invalidRequest(`There was an error parsing the body of your request: ${(error as Error).message}`)
  }
  if (!isObject(value)) throw invalidRequest('Request body must be a JSON object')
  return value
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Checks the fields the API requires; `prefix` names the location in batch requests. */
export function validateMessageParams(params: Record<string, unknown>, options: { prefix?: string; requireMaxTokens?: boolean } = {}): MessageParams {
  const prefix = options.prefix ?? ''
  const { model, max_tokens: maxTokens, messages, stream, tools } = params
  if (model === undefined) throw invalidRequest(`${prefix}model: Field required`)
  if (typeof model !== 'string') throw invalidRequest(`${prefix}model: Input should be a valid string`)
  if (options.requireMaxTokens !== false) {
    if (maxTokens === undefined) throw invalidRequest(`${prefix}max_tokens: Field required`)
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens)) throw invalidRequest(`${prefix}max_tokens: Input should be a valid integer`)
  }
  if (messages === undefined) throw invalidRequest(`${prefix}messages: Field required`)
  if (!Array.isArray(messages)) throw invalidRequest(`${prefix}messages: Input should be a valid list`)
  if (stream !== undefined && typeof stream !== 'boolean') throw invalidRequest(`${prefix}stream: Input should be a valid boolean`)
  const firstTool: unknown = Array.isArray(tools) ? tools[0] : undefined
  const toolName = isObject(firstTool) && typeof firstTool.name === 'string' ? firstTool.name : DEFAULT_TOOL_NAME
  return { model, stream: stream === true, toolName }
}

/** `input_tokens` of a request: ceil(body bytes / 4). */
export function countInputTokens(bodyBytes: number): number {
  return Math.ceil(bodyBytes / 4)
}

export function scriptFor(scripts: MessageScriptCache, controls: Readonly<EmulatorControls>, params: MessageParams): MessageScript {
  return scripts.get({ scenario: controls.scenario, deltas: controls.deltas, deltaSize: controls.deltaSize, toolName: params.toolName })
}

export function usageFor(controls: Readonly<EmulatorControls>, model: string, bodyBytes: number): MessageUsageInput {
  return {
    id: createId('msg_'),
    model,
    inputTokens: countInputTokens(bodyBytes),
    cacheCreationInputTokens: controls.cacheCreationInputTokens,
    cacheReadInputTokens: controls.cacheReadInputTokens,
  }
}

/** POST /v1/messages: a `Message` as JSON, or its SSE stream when `"stream": true`. */
export function createMessage(exchange: Exchange, scripts: MessageScriptCache): Promise<void> {
  const params = validateMessageParams(parseJsonObject(exchange.body))
  const { controls } = exchange
  const script = scriptFor(scripts, controls, params)
  const usage = usageFor(controls, params.model, exchange.body.length)
  if (!params.stream) return exchange.sendJson(200, renderMessageJson(script, usage))
  const start = renderMessageStart(usage)
  if (controls.deltaUsage === 'output') {
    return exchange.sendSse(() => [start, ...script.blockEvents, script.outputDelta, script.messageStop], [start, script.tail])
  }
  const delta = renderFullMessageDelta(script, usage)
  return exchange.sendSse(
    () => [start, ...script.blockEvents, delta, script.messageStop],
    [start, script.blocks, delta, script.messageStop],
  )
}

/** POST /v1/messages/count_tokens: `{"input_tokens": N}`. */
export function countTokens(exchange: Exchange): Promise<void> {
  validateMessageParams(parseJsonObject(exchange.body), { requireMaxTokens: false })
  return exchange.sendJson(200, `{"input_tokens":${countInputTokens(exchange.body.length)}}`)
}
