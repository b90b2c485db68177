import { channel } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { HTTPParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageComplete, type Parser } from '../llhttp.js'
import { errorBody } from './api-error.js'
import { DEFAULT_CONTROLS } from './controls.js'
import { currentRateLimitHeaders, EMULATOR_ORGANIZATION_ID, SSE_CONTENT_TYPE } from './exchange.js'
import { createId } from './ids.js'
import { usageFor } from './messages.js'
import { type MessageScript, MessageScriptCache, renderMessageJson, renderMessageStart } from './message-script.js'

/**
 * The benchmark's upstream: the two exchanges the load test makes (`POST /v1/messages`, plain
 * and streamed, with `x-emulator-deltas` and `x-emulator-pace-ms`), answered with the bytes the
 * full emulator renders for them, and nothing else. It reads each socket with Node's llhttp and
 * writes responses built once (a second at most: `date`, `request-id` and the rate-limit reset
 * change once a second), so one request costs it a read and a write. The full emulator
 * (`createEmulator`) spends most of a core on node:http at ~3,000 requests a second, which is
 * less than one Node proxy can pass; with this upstream the proxy's core is the limit.
 *
 * Anything else gets a 404 `not_found_error`; a body that is not the bench's JSON is still
 * answered (the bench's proxies pass bodies unchanged, and nothing here parses them).
 */
export interface FastUpstream {
  url: string
  port: number
  stats(): FastUpstreamStats
  close(): Promise<void>
}

export interface FastUpstreamStats {
  connections: number
  requests: number
}

export interface FastUpstreamOptions {
  host?: string
  port?: number
}

/** Published once per request, so the stats hook counts requests here as node:http's do. */
export const FAST_UPSTREAM_REQUEST_CHANNEL = 'apt.bench.upstream.request'

const requestChannel = channel(FAST_UPSTREAM_REQUEST_CHANNEL)
const STREAM_TRUE = Buffer.from('"stream":true')
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
const CRLF = Buffer.from('\r\n')
const KEEP_ALIVE_SECONDS = 5
const METHOD_POST = 3 // llhttp's method index of POST (http.METHODS order)

interface Rendered {
  second: number
  bytes: Buffer
}

/** What one request asked for: the response key and its pacing. */
interface Ask {
  stream: boolean
  deltas: number
  paceMs: number
  bodyBytes: number
  known: boolean
  /** `x-api-key` or `authorization` was sent (401 otherwise, as the full emulator answers). */
  authorized: boolean
  keepAlive: boolean
  chunked: boolean
}

/** As node:http writes them (the full emulator's server), with its 5 s keep-alive timeout. */
function connectionHeaders(keepAlive: boolean): string {
  return keepAlive ? `connection: keep-alive\r\nkeep-alive: timeout=${KEEP_ALIVE_SECONDS}\r\n` : 'connection: close\r\n'
}

function headLines(status: string, contentType: string, framing: string): string {
  let head = `HTTP/1.1 ${status}\r\n`
  for (const [name, value] of Object.entries(currentRateLimitHeaders())) head += `${name}: ${value}\r\n`
  head += `request-id: ${createId('req_')}\r\nanthropic-organization-id: ${EMULATOR_ORGANIZATION_ID}\r\n`
  head += `content-type: ${contentType}\r\ndate: ${new Date().toUTCString()}\r\n${framing}\r\n`
  return head
}

/** The model of the bench's request (`messageRequest`), which the full emulator echoes. */
const MODEL = 'claude-sonnet-4-5'

class Responses {
  readonly #scripts = new MessageScriptCache()
  readonly #plain = new Map<string, Rendered>()
  readonly #streams = new Map<string, { second: number, head: Buffer, events: Buffer[] }>()

  /** A complete non-streaming response (head and JSON body), rebuilt at most once a second. */
  plain(ask: Ask, second: number): Buffer {
    const key = `${ask.deltas}:${ask.bodyBytes}:${ask.keepAlive}`
    const cached = this.#plain.get(key)
    if (cached !== undefined && cached.second === second) return cached.bytes
    const body = Buffer.from(renderMessageJson(this.#script(ask), usageFor(DEFAULT_CONTROLS, MODEL, ask.bodyBytes)))
    const framing = `content-length: ${body.length}\r\n${connectionHeaders(ask.keepAlive)}`
    const bytes = Buffer.concat([Buffer.from(headLines('200 OK', 'application/json', framing)), body])
    this.#plain.set(key, { second, bytes })
    return bytes
  }

  /** The head and the SSE events of a stream, each event framed as one chunk when `chunked`. */
  stream(ask: Ask, second: number): { head: Buffer, events: Buffer[] } {
    const key = `${ask.deltas}:${ask.bodyBytes}:${ask.keepAlive}:${ask.chunked}`
    const cached = this.#streams.get(key)
    if (cached !== undefined && cached.second === second) return cached
    const script = this.#script(ask)
    const start = renderMessageStart(usageFor(DEFAULT_CONTROLS, MODEL, ask.bodyBytes))
    const raw = [start, ...script.blockEvents, script.outputDelta, script.messageStop]
    const events = ask.chunked ? raw.map((event) => Buffer.concat([Buffer.from(`${event.length.toString(16)}\r\n`), event, CRLF])) : raw
    const framing = ask.chunked ? `transfer-encoding: chunked\r\n${connectionHeaders(ask.keepAlive)}` : connectionHeaders(false)
    const entry = { second, head: Buffer.from(headLines('200 OK', SSE_CONTENT_TYPE, framing)), events }
    this.#streams.set(key, entry)
    return entry
  }

  #script(ask: Ask): MessageScript {
    return this.#scripts.get({ scenario: 'text', deltas: ask.deltas, deltaSize: DEFAULT_CONTROLS.deltaSize, toolName: 'get_weather' })
  }

  /** A 404 `not_found_error` or a 401 `authentication_error`, built per request (never on the measured path). */
  error(status: 404 | 401, keepAlive: boolean): Buffer {
    const body = Buffer.from(status === 404
      ? errorBody('not_found_error', 'Not found', createId('req_'))
      : errorBody('authentication_error', 'x-api-key header is required', createId('req_')))
    const framing = `content-length: ${body.length}\r\n${connectionHeaders(keepAlive)}`
    return Buffer.concat([Buffer.from(headLines(status === 404 ? '404 Not Found' : '401 Unauthorized', 'application/json', framing)), body])
  }
}

/** Index of the header `name` (lower case) in llhttp's flat name/value list, or -1. */
function headerIndex(headers: readonly string[], name: string): number {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).length === name.length && (headers[i] as string).toLowerCase() === name) return i
  }
  return -1
}

function headerNumber(headers: readonly string[], name: string, fallback: number): number {
  const index = headerIndex(headers, name)
  if (index === -1) return fallback
  const value = Number(headers[index + 1])
  return Number.isInteger(value) && value >= 0 ? value : fallback
}

/** One client connection: requests answered in order, one at a time. */
class Connection {
  readonly #socket: Socket
  readonly #responses: Responses
  readonly #stats: FastUpstreamStats
  readonly #queue: Ask[] = []
  #headerLines: string[] = []
  #ask: Ask | null = null
  #streamFlag = false
  #busy = false
  #timer: NodeJS.Timeout | null = null
  #closed = false

  constructor(socket: Socket, responses: Responses, stats: FastUpstreamStats) {
    this.#socket = socket
    this.#responses = responses
    this.#stats = stats
    socket.setNoDelay(true)
    // node:http's keepAliveTimeout, as announced in `keep-alive: timeout=5`; any read or write re-arms it.
    socket.setTimeout(KEEP_ALIVE_SECONDS * 1000, () => { if (!this.#busy) socket.end() })
    const parser: Parser = new HTTPParser()
    parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone)
    parser[kOnHeaders] = (headers: string[]) => {
      for (const line of headers) this.#headerLines.push(line)
    }
    parser[kOnHeadersComplete] = (major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined,
      _status: unknown, _message: unknown, _upgrade: boolean, keepAlive: boolean): number => {
      if (headers === undefined) {
        headers = this.#headerLines
        this.#headerLines = []
      }
      const path = url ?? ''
      this.#streamFlag = false
      this.#ask = {
        stream: false,
        deltas: headerNumber(headers, 'x-emulator-deltas', DEFAULT_CONTROLS.deltas),
        paceMs: headerNumber(headers, 'x-emulator-pace-ms', 0),
        bodyBytes: 0,
        known: method === METHOD_POST && (path === '/v1/messages' || path.startsWith('/v1/messages?')),
        authorized: headerIndex(headers, 'x-api-key') !== -1 || headerIndex(headers, 'authorization') !== -1,
        keepAlive,
        chunked: major === 1 && minor >= 1,
      }
      return 0
    }
    parser[kOnBody] = (chunk: Buffer) => {
      const ask = this.#ask
      if (ask === null) return
      // The bench's body is compact JSON in one piece; a split flag would only make a stream plain.
      if (!this.#streamFlag && chunk.includes(STREAM_TRUE)) this.#streamFlag = true
      ask.bodyBytes += chunk.length
    }
    parser[kOnMessageComplete] = () => {
      this.#headerLines = []
      const ask = this.#ask
      if (ask === null) return
      this.#ask = null
      ask.stream = this.#streamFlag
      this.#stats.requests++
      if (requestChannel.hasSubscribers) requestChannel.publish(ask)
      if (this.#busy) this.#queue.push(ask)
      else this.#respond(ask)
    }
    socket.on('data', (chunk: Buffer) => {
      const result = parser.execute(chunk)
      if (result instanceof Error) this.#fail()
    })
    socket.on('error', () => {})
    socket.on('end', () => {
      if (!this.#busy) socket.end()
    })
    socket.on('close', () => {
      this.#closed = true
      if (this.#timer !== null) clearTimeout(this.#timer)
      parser.close()
    })
  }

  #fail(): void {
    if (this.#closed) return
    this.#socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
    this.#closed = true
  }

  #respond(ask: Ask): void {
    const second = Math.floor(Date.now() / 1000)
    const socket = this.#socket
    if (!ask.known || !ask.authorized) {
      socket.write(this.#responses.error(ask.known ? 401 : 404, ask.keepAlive))
      this.#done(ask)
      return
    }
    if (!ask.stream) {
      socket.write(this.#responses.plain(ask, second))
      this.#done(ask)
      return
    }
    const { head, events } = this.#responses.stream(ask, second)
    if (ask.paceMs === 0) {
      socket.cork()
      socket.write(head)
      for (const event of events) socket.write(event)
      if (ask.chunked) socket.write(LAST_CHUNK)
      socket.uncork()
      this.#done(ask)
      return
    }
    // Paced: the first event goes out with the head, then one event every paceMs, from one
    // Timeout per stream re-armed with refresh() (no allocation per event).
    this.#busy = true
    socket.cork()
    socket.write(head)
    socket.write(events[0] as Buffer)
    socket.uncork()
    let next = 1
    const timer = setTimeout(() => {
      if (this.#closed) return
      const event = events[next++]
      if (event !== undefined) socket.write(event)
      if (next < events.length) {
        timer.refresh()
        return
      }
      this.#timer = null
      if (ask.chunked) socket.write(LAST_CHUNK)
      this.#done(ask)
    }, ask.paceMs)
    this.#timer = timer
  }

  #done(ask: Ask): void {
    this.#busy = false
    if (!ask.keepAlive || !ask.chunked && ask.stream) {
      this.#socket.end()
      return
    }
    const queued = this.#queue.shift()
    if (queued !== undefined) this.#respond(queued)
    else if (this.#socket.readableEnded) this.#socket.end()
  }
}

/** Starts the bench's fast upstream on `host:port` (default 127.0.0.1, any free port). */
export async function createFastUpstream(options: FastUpstreamOptions = {}): Promise<FastUpstream> {
  const host = options.host ?? '127.0.0.1'
  const responses = new Responses()
  const stats: FastUpstreamStats = { connections: 0, requests: 0 }
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    stats.connections++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    new Connection(socket, responses, stats)
  })
  server.listen(options.port ?? 0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    stats: () => ({ ...stats }),
    close: async () => {
      const closed = once(server, 'close')
      server.close()
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}
