import { notFound } from './api-error.js'
import type { Exchange } from './exchange.js'
import { paginate } from './pagination.js'

/** A `ModelInfo` as GET /v1/models returns it. */
export interface EmulatedModel {
  id: string
  type: 'model'
  display_name: string
  created_at: string
  max_input_tokens: number
  max_tokens: number
  capabilities: null
  deprecated_at: null
  retires_at: null
  lifecycle: 'active'
  line: 'opus' | 'sonnet' | 'haiku'
}

function model(id: string, displayName: string, createdAt: string, line: EmulatedModel['line'], maxTokens: number): EmulatedModel {
  return {
    id,
    type: 'model',
    display_name: displayName,
    created_at: createdAt,
    max_input_tokens: 200_000,
    max_tokens: maxTokens,
    capabilities: null,
    deprecated_at: null,
    retires_at: null,
    lifecycle: 'active',
    line,
  }
}

/** The emulated catalogue, newest first as the API lists it. */
export const EMULATED_MODELS: readonly EmulatedModel[] = Object.freeze([
  model('claude-opus-4-8', 'Claude Opus 4.8', '2026-07-15T00:00:00Z', 'opus', 128_000),
  model('claude-opus-4-7', 'Claude Opus 4.7', '2026-04-16T00:00:00Z', 'opus', 128_000),
  model('claude-sonnet-4-6', 'Claude Sonnet 4.6', '2026-02-17T00:00:00Z', 'sonnet', 64_000),
  model('claude-opus-4-6', 'Claude Opus 4.6', '2026-02-05T00:00:00Z', 'opus', 128_000),
  model('claude-haiku-4-5-20251001', 'Claude Haiku 4.5', '2025-10-15T00:00:00Z', 'haiku', 64_000),
  model('claude-sonnet-4-20250514', 'Claude Sonnet 4', '2025-05-22T00:00:00Z', 'sonnet', 64_000),
])

/** GET /v1/models */
export function listModels(exchange: Exchange): Promise<void> {
  return exchange.sendJson(200, paginate(EMULATED_MODELS, exchange.query))
}

/** GET /v1/models/{model_id} */
export function retrieveModel(exchange: Exchange, modelId: string): Promise<void> {
  const found = EMULATED_MODELS.find((candidate) => candidate.id === modelId)
  if (found === undefined) throw notFound(`model: ${modelId}`)
  return exchange.sendJson(200, found)
}
