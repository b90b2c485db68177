import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import diagnosticsChannel from 'node:diagnostics_channel'
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { Client, type Dispatcher, Pool, buildConnector } from 'undici'
import { AdapterError, type TimeoutKind } from './errors.js'
import { RequestHead } from './headers.js'
import { type Exchange, type ExchangeHooks, ForwardHandler, type HandlerOwner, takePendingSocketOwner } from './forward-handler.js'
import { resolveOptions, type ResolvedUpstreamOptions, type UpstreamClientOptions } from './options.js'
import { WirePool, type WireHandler, type WireRequest } from './wire-pool.js'

export interface ForwardRequest {
  method: string
  /** Path and query exactly as received, e.g. `/v1/messages?beta=true`. */
  path: string
  /** Prepared headers (see `prepareRequestHeaders`), or the same encoded (`prepareRequestHead`). */
  headers: string[] | RequestHead
  /** A Buffer (replayable after a stale-socket failure), a stream, or null. */
  body: Buffer | Readable | AsyncIterable<Buffer> | null
  /** performance.now() when the request arrived (for overhead accounting). Default: now. */
  receivedAt?: number
}

export interface ForwardOptions extends ExchangeHooks {
  /** Collect a 2xx uncompressed JSON response and send `rewriteBody(body)` instead (content-length fixed). */
  rewriteBody?: ((body: Buffer) => Buffer) | undefined
}

export interface ConnectionStats {
  /** Exchanges started (not counting warm-up). */
  requests: number
  /** Requests sent on a socket that had already served one. */
  hits: number
  /** Requests that were the first on a new socket. */
  misses: number
  /** Sockets opened to the upstream (warm-up included). */
  connectionsOpened: number
  /** Stale-socket replays. */
  retries: number
  /** Exchanges the client abandoned. */
  clientAborts: number
  /** Exchanges that ended with an adapter error (timeouts and aborts included). */
  errors: number
  timeouts: Record<TimeoutKind, number> & { total: number }
  inFlight: number
  pool: { connected: number, free: number, pending: number, queued: number, running: number, size: number }
}

export interface WarmUpResult { requested: number, opened: number, failed: number }

export interface UpstreamClient {
  readonly options: ResolvedUpstreamOptions
  /** Forward one request, writing the response to `response` as bytes arrive; `callback` runs once at the end. */
  forward (request: ForwardRequest, response: ServerResponse, callback: (exchange: Exchange) => void, options?: ForwardOptions): void
  /** Open `count` connections now (default: options.warmupConnections). */
  warmUp (count?: number): Promise<WarmUpResult>
  stats (): ConnectionStats
  /** Number of exchanges not yet settled. */
  readonly inFlight: number
  /** Let running requests finish, then close every socket. */
  close (): Promise<void>
  /** Abort everything at once. */
  destroy (): Promise<void>
}

const kServed = Symbol('apt.served')
interface CountedSocket { [kServed]?: number }

let channelSubscribed = false
function subscribeSendHeaders (): void {
  if (channelSubscribed) return
  channelSubscribed = true
  diagnosticsChannel.subscribe('undici:client:sendHeaders', (message) => {
    const owner = takePendingSocketOwner()
    const socket = (message as { socket: CountedSocket }).socket
    const served = socket[kServed]
    if (served === undefined) return // not one of ours
    socket[kServed] = served + 1 // warm-up requests count too: they make the socket "used"
    if (owner === null) return
    owner.reusedSocket = served > 0
    const stats = owner.reuseStats
    if (stats === null) return
    if (served > 0) stats.hits++
    else stats.misses++
  })
}

/**
 * The exchanges in flight: an array, and each exchange's index in it (removal moves the last one
 * into the gap). Not a `Set`: V8 links every table a Set outgrows or compacts to its successor
 * (for live iterators) with its entries still in it, so with one add and one delete per request
 * the dead tables chained every request since the last full GC together, and each scavenge copied
 * and promoted all of them (~2.2 KB a request at c=128; docs/performance.md, change 33).
 */
class RunningExchanges {
  readonly #list: ForwardHandler[] = []

  get size (): number {
    return this.#list.length
  }

  add (handler: ForwardHandler): void {
    handler.runningIndex = this.#list.length
    this.#list.push(handler)
  }

  delete (handler: ForwardHandler): void {
    const index = handler.runningIndex
    if (index === -1) return
    handler.runningIndex = -1
    const list = this.#list
    const last = list.pop() as ForwardHandler
    if (last !== handler) {
      list[index] = last
      last.runningIndex = index
    }
  }

  /** A copy to iterate while exchanges leave it. */
  snapshot (): ForwardHandler[] {
    return this.#list.slice()
  }
}

interface MutableStats {
  requests: number, hits: number, misses: number, connectionsOpened: number, retries: number
  clientAborts: number, errors: number, timeouts: Record<TimeoutKind, number>
}

const TIMEOUT_KIND: Partial<Record<string, TimeoutKind>> = {
  APT_ADAPTER_CONNECT_TIMEOUT: 'connect',
  APT_ADAPTER_HEADERS_TIMEOUT: 'headers',
  APT_ADAPTER_BODY_TIMEOUT: 'body',
  APT_ADAPTER_POOL_TIMEOUT: 'poolWait',
}

class UpstreamClientImpl implements UpstreamClient, HandlerOwner {
  readonly options: ResolvedUpstreamOptions
  /** undici's pool (engine 'undici', and always for HTTP/2), or null. */
  readonly #pool: Pool | null = null
  /** The wire engine's pool (engine 'wire', the default for HTTP/1.1), or null. */
  readonly #wire: WirePool | null = null
  readonly #stats: MutableStats = {
    requests: 0, hits: 0, misses: 0, connectionsOpened: 0, retries: 0, clientAborts: 0, errors: 0,
    timeouts: { connect: 0, headers: 0, body: 0, poolWait: 0 },
  }
  readonly #running = new RunningExchanges()
  readonly #clientOptions: Client.Options
  /** One-off clients carrying stale-socket replays, so a replay always gets a fresh connection. */
  readonly #replayClients = new Map<ForwardHandler, Client>()
  #closed = false

  constructor (options: ResolvedUpstreamOptions) {
    this.options = options
    const stats = this.#stats
    this.#clientOptions = {} // undici's options; the wire engine has none (set below for undici)
    if (options.engine === 'wire') {
      this.#wire = new WirePool({
        origin: options.origin,
        maxConnections: options.maxConnections,
        keepAliveTimeoutMs: options.keepAliveTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        headersTimeoutMs: options.headersTimeoutMs,
        bodyTimeoutMs: options.bodyTimeoutMs,
        tlsCa: options.tlsCa,
        consume: options.wireConsume,
        onConnectionOpened: () => { stats.connectionsOpened++ },
        onSend: (handler, reused) => {
          takePendingSocketOwner() // set by onConnect for undici's channel, which the wire engine does not publish
          if (!(handler instanceof ForwardHandler)) return // warm-up
          handler.reusedSocket = reused
          if (reused) stats.hits++
          else stats.misses++
        },
      })
      return
    }
    // TLS is always verified; `tlsCa` only adds trusted roots (a private CA), never turns it off.
    const connector = buildConnector({
      timeout: options.connectTimeoutMs,
      rejectUnauthorized: true,
      allowH2: options.allowH2,
      ...(options.tlsCa === undefined ? {} : { ca: options.tlsCa }),
    })
    const connect: buildConnector.connector = (connectOptions, callback) => {
      connector(connectOptions, (error, socket) => {
        if (error !== null || socket === null) {
          callback(error ?? new Error('connect failed'), null)
          return
        }
        stats.connectionsOpened++
        ;(socket as unknown as CountedSocket)[kServed] = 0
        callback(null, socket)
      })
    }
    this.#clientOptions = {
      keepAliveTimeout: options.keepAliveTimeoutMs,
      keepAliveMaxTimeout: options.keepAliveTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      allowH2: options.allowH2,
      pipelining: options.maxKeepAlive === 0 ? 0 : 1,
      connect,
    }
    this.#pool = new Pool(options.origin, { ...this.#clientOptions, connections: options.maxConnections })
    subscribeSendHeaders()
  }

  get inFlight (): number {
    return this.#running.size
  }

  forward (request: ForwardRequest, response: ServerResponse, callback: (exchange: Exchange) => void, options?: ForwardOptions): void {
    const body = request.body
    // One object serves both engines: undici's DispatchOptions and the wire engine's WireRequest.
    const opts: Dispatcher.DispatchOptions & WireRequest = {
      path: this.options.pathPrefix + request.path,
      method: request.method as Dispatcher.HttpMethod,
      // undici takes a flat list; the wire engine copies an encoded head as it is.
      headers: this.#wire === null && request.headers instanceof RequestHead ? request.headers.list() : request.headers as string[],
      body: body as Buffer | Readable | null,
      reset: this.options.maxKeepAlive === 0,
    }
    const handler = new ForwardHandler(this, response, opts, body === null || Buffer.isBuffer(body), callback, options,
      options?.rewriteBody, request.receivedAt ?? performance.now(), this.options)
    this.#stats.requests++
    handler.reuseStats = this.#stats
    this.#running.add(handler)
    if (this.#closed) {
      handler.abort(new AdapterError('APT_ADAPTER_CLOSED', 'The upstream client is closing'))
      return
    }
    handler.start()
  }

  // HandlerOwner
  dispatch (opts: Dispatcher.DispatchOptions, handler: ForwardHandler): boolean {
    const wire = this.#wire
    if (wire !== null) {
      // A replay never takes a pooled socket: they may all be as stale as the one that just died.
      if (handler.retried) this.#stats.retries++
      return wire.dispatch(opts as Dispatcher.DispatchOptions & WireRequest, handler as unknown as WireHandler, handler.retried)
    }
    if (!handler.retried) return (this.#pool as Pool).dispatch(opts, handler as unknown as Dispatcher.DispatchHandler)
    // The pooled sockets may all be as stale as the one that just died: replay on a new connection.
    this.#stats.retries++
    const client = new Client(this.options.origin, this.#clientOptions)
    this.#replayClients.set(handler, client)
    return client.dispatch(opts, handler as unknown as Dispatcher.DispatchHandler)
  }

  notePending (handler: ForwardHandler): void {
    // The pool is saturated: this request may wait in undici's queue. Bound that wait.
    const ms = this.options.poolTimeoutMs
    if (ms > 0 && handler.poolTimer === null && !handler.settled) {
      handler.poolTimer = setTimeout(() => { handler.poolTimedOut() }, ms).unref()
    }
  }

  settle (handler: ForwardHandler): void {
    this.#running.delete(handler)
    // Settled while still queued (pool wait ran out, client left): it must never be sent.
    if (this.#wire !== null && handler.sentAt === 0) this.#wire.cancelQueued(handler as unknown as WireHandler)
    const replayClient = this.#replayClients.get(handler)
    if (replayClient !== undefined) {
      this.#replayClients.delete(handler)
      replayClient.close().catch(() => {})
    }
    const error = handler.error
    if (error === null) return
    const stats = this.#stats
    if (handler.clientAborted) {
      stats.clientAborts++
      return
    }
    stats.errors++
    const kind = TIMEOUT_KIND[error.code]
    if (kind !== undefined) stats.timeouts[kind]++
  }

  async warmUp (count = this.options.warmupConnections): Promise<WarmUpResult> {
    const target = Math.min(count, this.options.maxConnections)
    const attempts: Promise<boolean>[] = []
    const path = this.options.pathPrefix + this.options.warmupPath
    const wire = this.#wire
    for (let i = 0; i < target; i++) {
      if (wire !== null) {
        attempts.push(new Promise<boolean>((resolve) => {
          // Each attempt opens its own connection (fresh), so `count` sockets end up pooled.
          wire.dispatch({ method: 'GET', path, headers: [], body: null, reset: false }, {
            onConnect () {},
            onHeaders () { return true },
            onData () { return true },
            onComplete () { resolve(true) },
            onError () { resolve(false) },
          }, true)
        }))
        continue
      }
      attempts.push((this.#pool as Pool).request({ path, method: 'GET' })
        .then(async (response) => { await response.body.dump(); return true }, () => false))
    }
    const results = await Promise.all(attempts)
    const opened = results.filter(Boolean).length
    return { requested: target, opened, failed: target - opened }
  }

  stats (): ConnectionStats {
    const s = this.#stats
    const pool = this.#wire?.stats ?? (this.#pool as Pool).stats
    return {
      requests: s.requests,
      hits: s.hits,
      misses: s.misses,
      connectionsOpened: s.connectionsOpened,
      retries: s.retries,
      clientAborts: s.clientAborts,
      errors: s.errors,
      timeouts: { ...s.timeouts, total: s.timeouts.connect + s.timeouts.headers + s.timeouts.body + s.timeouts.poolWait },
      inFlight: this.#running.size,
      pool: { connected: pool.connected, free: pool.free, pending: pool.pending, queued: pool.queued, running: pool.running, size: pool.size },
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#wire !== null) await this.#wire.close()
    else await (this.#pool as Pool).close()
  }

  async destroy (): Promise<void> {
    this.#closed = true
    const error = new AdapterError('APT_ADAPTER_CLOSED', 'The upstream client was destroyed')
    for (const handler of this.#running.snapshot()) handler.abort(error)
    for (const client of this.#replayClients.values()) client.destroy(error).catch(() => {})
    if (this.#wire !== null) await this.#wire.destroy(error)
    else await (this.#pool as Pool).destroy(error)
  }
}

export function createUpstreamClient (options: UpstreamClientOptions): UpstreamClient {
  return new UpstreamClientImpl(resolveOptions(options))
}
