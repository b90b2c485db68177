import { invalidRequest, notFound } from './api-error.js'
import type { EmulatorControls } from './controls.js'
import type { Exchange } from './exchange.js'
import { createId } from './ids.js'
import { type MessageScriptCache, renderMessageJson } from './message-script.js'
import { isObject, parseJsonObject, scriptFor, usageFor, validateMessageParams } from './messages.js'
import { paginate } from './pagination.js'

type ProcessingStatus = 'in_progress' | 'canceling' | 'ended'

interface StoredBatch {
  id: string
  createdAtMs: number
  status: ProcessingStatus
  canceled: boolean
  cancelInitiatedAtMs: number | null
  endedAtMs: number | null
  /** Request bodies, kept until the batch ends and its results are rendered. */
  requests: { customId: string; params: Record<string, unknown> }[]
  requestCount: number
  /** Content controls of the creating request, applied to every result. */
  controls: Readonly<EmulatorControls>
  /** The JSONL results, rendered once when the batch ends. */
  results: Buffer | null
}

const EXPIRY_MS = 24 * 60 * 60 * 1000
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/

function timestamp(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}

/**
 * Message batches in memory. A batch stays `in_progress` (or `canceling`) until
 * it is read (retrieve, list, results) or deleted at least `processingMs` after
 * creation; with 0 the first such access ends it. Cancel never ends a batch by
 * itself, so a batch canceled before any read ends with every request canceled.
 */
export class BatchStore {
  readonly #batches = new Map<string, StoredBatch>()
  readonly #scripts: MessageScriptCache
  readonly #processingMs: number

  constructor(scripts: MessageScriptCache, processingMs: number) {
    this.#scripts = scripts
    this.#processingMs = processingMs
  }

  /** POST /v1/messages/batches */
  create(exchange: Exchange): Promise<void> {
    const { requests } = parseJsonObject(exchange.body)
    if (requests === undefined) throw invalidRequest('requests: Field required')
    if (!Array.isArray(requests) || requests.length === 0) throw invalidRequest('requests: Input should be a non-empty list')
    const seen = new Set<string>()
    const stored = requests.map((request: unknown, index) => {
      if (!isObject(request)) throw invalidRequest(`requests.${index}: Input should be a valid dictionary`)
      const { custom_id: customId, params } = request
      if (typeof customId !== 'string' || !CUSTOM_ID.test(customId)) {
        throw invalidRequest(`requests.${index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`)
      }
      if (seen.has(customId)) throw invalidRequest(`requests.${index}.custom_id: Duplicate custom_id '${customId}'`)
      seen.add(customId)
      if (!isObject(params)) throw invalidRequest(`requests.${index}.params: Field required`)
      validateMessageParams(params, { prefix: `requests.${index}.params.` })
      return { customId, params }
    })
    const batch: StoredBatch = {
      id: createId('msgbatch_'),
      createdAtMs: Date.now(),
      status: 'in_progress',
      canceled: false,
      cancelInitiatedAtMs: null,
      endedAtMs: null,
      requests: stored,
      requestCount: stored.length,
      controls: exchange.controls,
      results: null,
    }
    this.#batches.set(batch.id, batch)
    return exchange.sendJson(200, this.#render(batch, exchange.origin))
  }

  /** GET /v1/messages/batches, newest first. */
  list(exchange: Exchange): Promise<void> {
    const newestFirst = [...this.#batches.values()].reverse()
    const page = paginate(newestFirst, exchange.query)
    const data = page.data.map((batch) => this.#render(this.#advance(batch), exchange.origin))
    return exchange.sendJson(200, { ...page, data })
  }

  retrieve(exchange: Exchange, batchId: string): Promise<void> {
    return exchange.sendJson(200, this.#render(this.#advance(this.#get(batchId)), exchange.origin))
  }

  /** POST /v1/messages/batches/{id}/cancel: `in_progress` → `canceling`; otherwise unchanged. */
  cancel(exchange: Exchange, batchId: string): Promise<void> {
    const batch = this.#get(batchId)
    if (batch.status === 'in_progress') {
      batch.status = 'canceling'
      batch.cancelInitiatedAtMs = Date.now()
    }
    return exchange.sendJson(200, this.#render(batch, exchange.origin))
  }

  /** DELETE /v1/messages/batches/{id}: only ended batches can be deleted. */
  delete(exchange: Exchange, batchId: string): Promise<void> {
    const batch = this.#advance(this.#get(batchId))
    if (batch.status !== 'ended') {
      throw invalidRequest(`Batch ${batchId} cannot be deleted while it is processing; cancel it first.`)
    }
    this.#batches.delete(batchId)
    return exchange.sendJson(200, { id: batchId, type: 'message_batch_deleted' })
  }

  /** GET /v1/messages/batches/{id}/results: JSONL, one result per request. */
  results(exchange: Exchange, batchId: string): Promise<void> {
    const batch = this.#advance(this.#get(batchId))
    if (batch.results === null) throw notFound(`Batch ${batchId} has not finished processing; no results yet.`)
    return exchange.send(200, 'application/binary', batch.results)
  }

  #get(batchId: string): StoredBatch {
    const batch = this.#batches.get(batchId)
    if (batch === undefined) throw notFound(`Batch not found: ${batchId}`)
    return batch
  }

  #advance(batch: StoredBatch): StoredBatch {
    if (batch.status === 'ended' || Date.now() < batch.createdAtMs + this.#processingMs) return batch
    batch.canceled = batch.status === 'canceling'
    batch.status = 'ended'
    batch.endedAtMs = Date.now()
    batch.results = Buffer.from(batch.requests.map((request) => `${this.#resultLine(batch, request)}\n`).join(''))
    batch.requests = []
    return batch
  }

  #resultLine(batch: StoredBatch, request: StoredBatch['requests'][number]): string {
    const customId = JSON.stringify(request.customId)
    if (batch.canceled) return `{"custom_id":${customId},"result":{"type":"canceled"}}`
    const params = validateMessageParams(request.params)
    const script = scriptFor(this.#scripts, batch.controls, params)
    const usage = usageFor(batch.controls, params.model, Buffer.byteLength(JSON.stringify(request.params)))
    return `{"custom_id":${customId},"result":{"type":"succeeded","message":${renderMessageJson(script, usage)}}}`
  }

  #render(batch: StoredBatch, origin: string): object {
    const ended = batch.status === 'ended'
    const count = batch.requestCount
    return {
      id: batch.id,
      type: 'message_batch',
      processing_status: batch.status,
      request_counts: {
        processing: ended ? 0 : count,
        succeeded: ended && !batch.canceled ? count : 0,
        errored: 0,
        canceled: ended && batch.canceled ? count : 0,
        expired: 0,
      },
      ended_at: timestamp(batch.endedAtMs),
      created_at: timestamp(batch.createdAtMs),
      expires_at: timestamp(batch.createdAtMs + EXPIRY_MS),
      archived_at: null,
      cancel_initiated_at: timestamp(batch.cancelInitiatedAtMs),
      results_url: ended ? `${origin}/v1/messages/batches/${batch.id}/results` : null,
    }
  }
}
