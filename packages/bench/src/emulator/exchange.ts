import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { type AnthropicErrorType, defaultErrorMessage, errorBody, errorTypeForStatus, streamErrorBody } from './api-error.js'
import type { EmulatorControls } from './controls.js'
import { createId } from './ids.js'
import { sseEvent } from './message-script.js'
import { writeSseEvents } from './sse-writer.js'

/** `anthropic-organization-id` of every emulated response. */
export const EMULATOR_ORGANIZATION_ID = '8d7c5a3e-1f2b-4c6d-9e8f-0a1b2c3d4e5f'

/** Abort reason for `Exchange.signal`; preallocated because a default reason builds a DOMException per abort. */
const RESPONSE_CLOSED = new Error('response closed')

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8'
const JSON_CONTENT_TYPE = 'application/json'

const RATE_LIMITS = {
  requests: 4000,
  tokens: 2_000_000,
  'input-tokens': 1_600_000,
  'output-tokens': 400_000,
} as const

let rateLimitSecond = -1
let rateLimitHeaders: Readonly<Record<string, string>> = {}

/** Constant limits with full `remaining`; `reset` one minute ahead in RFC 3339, rebuilt once a second. */
export function currentRateLimitHeaders(): Readonly<Record<string, string>> {
  const second = Math.floor(Date.now() / 1000)
  if (second !== rateLimitSecond) {
    rateLimitSecond = second
    const reset = new Date((second + 60) * 1000).toISOString().replace('.000Z', 'Z')
    const headers: Record<string, string> = {}
    for (const [bucket, limit] of Object.entries(RATE_LIMITS)) {
      headers[`anthropic-ratelimit-${bucket}-limit`] = String(limit)
      headers[`anthropic-ratelimit-${bucket}-remaining`] = String(limit)
      headers[`anthropic-ratelimit-${bucket}-reset`] = reset
    }
    rateLimitHeaders = headers
  }
  return rateLimitHeaders
}

export interface ExchangeInit {
  request: IncomingMessage
  response: ServerResponse
  body: Buffer
  controls: Readonly<EmulatorControls>
  path: string
  queryString: string
  /** `http://host:port` as the client addressed the emulator (its Host header). */
  origin: string
  /** Called before the emulator destroys the socket on purpose. */
  markDropped: () => void
}

/**
 * One request/response pair: the parsed request facts plus the only ways a
 * response leaves the emulator, so every response gets the common headers,
 * `x-emulator-headers-delay-ms` and `x-emulator-encoding` applied alike.
 */
export class Exchange {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly body: Buffer
  readonly controls: Readonly<EmulatorControls>
  readonly path: string
  readonly origin: string
  readonly requestId = createId('req_')
  readonly #queryString: string
  readonly #markDropped: () => void
  #query: URLSearchParams | undefined
  #abort: AbortController | undefined

  constructor(init: ExchangeInit) {
    this.request = init.request
    this.response = init.response
    this.body = init.body
    this.controls = init.controls
    this.path = init.path
    this.origin = init.origin
    this.#queryString = init.queryString
    this.#markDropped = init.markDropped
  }

  /**
   * Aborted when the response closes (finished, client gone or emulator
   * closing). Created on first use: most responses never wait on anything.
   */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      const abort = new AbortController()
      this.#abort = abort
      if (this.closed) abort.abort(RESPONSE_CLOSED)
      else this.response.once('close', () => abort.abort(RESPONSE_CLOSED))
    }
    return this.#abort.signal
  }

  /** The response can take no more bytes (ended or its socket is gone). */
  get closed(): boolean {
    return this.response.writableEnded || this.response.destroyed
  }

  get query(): URLSearchParams {
    this.#query ??= new URLSearchParams(this.#queryString)
    return this.#query
  }

  /** Common response headers plus `extra`. */
  headers(extra?: OutgoingHttpHeaders): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = {
      ...currentRateLimitHeaders(),
      'request-id': this.requestId,
      'anthropic-organization-id': EMULATOR_ORGANIZATION_ID,
    }
    if (this.controls.retryAfter !== null) headers['retry-after'] = this.controls.retryAfter
    if (this.controls.shouldRetry !== null) headers['x-should-retry'] = this.controls.shouldRetry
    return extra === undefined ? headers : Object.assign(headers, extra)
  }

  async #beforeHeaders(): Promise<void> {
    if (this.controls.headersDelayMs > 0) await delay(this.controls.headersDelayMs, undefined, { signal: this.signal })
  }

  /** A complete body with `content-length`, compressed if `x-emulator-encoding` asks. */
  async send(status: number, contentType: string | null, body: Buffer | string, extra?: OutgoingHttpHeaders): Promise<void> {
    await this.#beforeHeaders()
    let bytes = typeof body === 'string' ? Buffer.from(body) : body
    const headers = this.headers(extra)
    if (contentType !== null) headers['content-type'] = contentType
    const { encoding } = this.controls
    if (encoding !== null && bytes.length > 0) {
      bytes = encoding === 'gzip' ? gzipSync(bytes) : brotliCompressSync(bytes)
      headers['content-encoding'] = encoding
    }
    headers['content-length'] = bytes.length
    this.response.writeHead(status, headers)
    this.response.end(bytes)
  }

  sendJson(status: number, json: string | object): Promise<void> {
    return this.send(status, JSON_CONTENT_TYPE, typeof json === 'string' ? json : JSON.stringify(json))
  }

  /** The Anthropic error envelope; `request_id` equals the `request-id` header. */
  sendError(status: number, message?: string, type: AnthropicErrorType = errorTypeForStatus(status)): Promise<void> {
    return this.sendJson(status, errorBody(type, message ?? defaultErrorMessage(type), this.requestId))
  }

  /**
   * A 200 `text/event-stream` response of `events()`, one buffer per event.
   * Without pacing, stalls, errors, drops or encoding the bytes of `joined`
   * (the same bytes as the events, in fewer pieces) go out as one chunk and
   * `events` is never called.
   */
  async sendSse(events: () => readonly Buffer[], joined: readonly Buffer[]): Promise<void> {
    await this.#beforeHeaders()
    const controls = this.controls
    const headers = this.headers({ 'content-type': SSE_CONTENT_TYPE })
    if (controls.encoding !== null) headers['content-encoding'] = controls.encoding
    this.response.writeHead(200, headers)
    const immediate =
      controls.paceMs === 0 &&
      controls.errorAfterEvents === null &&
      controls.dropAfterEvents === null &&
      (controls.stallAfterEvents === null || controls.stallMs === 0) &&
      controls.encoding === null
    if (immediate) {
      // One chunk: a single buffer costs less than a corked writev of many.
      this.response.end(Buffer.concat(joined))
      return
    }
    await writeSseEvents(this.response, events(), {
      paceMs: controls.paceMs,
      stallAfterEvents: controls.stallAfterEvents,
      stallMs: controls.stallMs,
      errorAfterEvents: controls.errorAfterEvents,
      dropAfterEvents: controls.dropAfterEvents,
      encoding: controls.encoding,
      errorEvent: sseEvent('error', streamErrorBody(this.requestId)),
      signal: this.signal,
      drop: () => this.drop(),
    })
  }

  /** Destroys the socket mid-response, counted as `dropped`, not `aborted`. */
  drop(): void {
    this.#markDropped()
    this.response.socket?.destroy()
  }
}
