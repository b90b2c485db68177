import { type Dispatcher, request as sendRequest } from 'undici'

export interface MessageRequestOptions {
  stream: boolean
  /** `x-emulator-deltas`; omitted when undefined (the emulator's default). */
  deltas?: number
  /** `x-emulator-pace-ms`; omitted when 0. */
  paceMs?: number
}

/**
 * One `POST /v1/messages` request, built once and dispatched many times: the
 * body buffer and header array are shared by every request of a run.
 */
export function messageRequest(options: MessageRequestOptions): Dispatcher.DispatchOptions {
  const body = Buffer.from(
    JSON.stringify({
      model: 'claude-sonnet-4-5',
      max_tokens: 256,
      stream: options.stream,
      messages: [{ role: 'user', content: 'Say hello to the benchmark.' }],
    }),
  )
  const headers = [
    'content-type', 'application/json',
    'x-api-key', 'bench-key',
    'anthropic-version', '2023-06-01',
  ]
  if (options.deltas !== undefined) headers.push('x-emulator-deltas', String(options.deltas))
  if (options.paceMs !== undefined && options.paceMs > 0) headers.push('x-emulator-pace-ms', String(options.paceMs))
  return { path: '/v1/messages', method: 'POST', headers, body, headersTimeout: 60_000, bodyTimeout: 60_000 }
}

const EVENT_END = Buffer.from('\n\n')

/**
 * Counts SSE event terminators (`\n\n`) in `chunk`; `previousEndedWithNewline`
 * catches a terminator split across two chunks.
 */
export function countEventEnds(chunk: Buffer, previousEndedWithNewline: boolean): number {
  let count = previousEndedWithNewline && chunk[0] === 0x0a ? 1 : 0
  let index = chunk.indexOf(EVENT_END, count)
  while (index !== -1) {
    count++
    index = chunk.indexOf(EVENT_END, index + 2)
  }
  return count
}

/** Sends `request` once to `url` and returns its status and the number of SSE events in the body. */
export async function probeRequest(url: string, request: Dispatcher.DispatchOptions): Promise<{ status: number, events: number }> {
  const response = await sendRequest(new URL(request.path, url), {
    method: request.method,
    headers: request.headers ?? null,
    body: request.body as Buffer,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  })
  const body = Buffer.from(await response.body.arrayBuffer())
  return { status: response.statusCode, events: countEventEnds(body, false) }
}
