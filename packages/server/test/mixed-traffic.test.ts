import { createEmulator, type Emulator } from '@apt/bench'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type RunningProxy, startProxy } from './helpers.js'
import { liveInstances } from '../../../test/support/heap-census.js'

/**
 * Every kind of exchange at once through a small pool (8 upstream connections): JSON,
 * streams, paced and gzip streams, error statuses, mid-stream drops and errors, slow
 * headers, client aborts and large uploads. Each request must end the way its kind says,
 * and afterwards the proxy must be idle: nothing in flight, nothing queued, every pooled
 * socket free. A connection pooled in the wrong state shows up here as a hang or a count, and an
 * exchange that some way of ending leaves reachable shows up in a count of the heap's objects.
 */

/** The proxy's objects that belong to one exchange or one client connection (a name is counted only if unique). */
const PER_EXCHANGE = ['ForwardHandler', 'FrontConnection', 'FrontRequest', 'FrontResponse', 'Tap', 'SseReader', 'ResponseHead', 'AdapterError', 'WireError']

const BASE = { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }

interface Kind { name: string, headers: Record<string, string>, stream: boolean, expect: string }

const KINDS: Kind[] = [
  { name: 'json', headers: {}, stream: false, expect: '200' },
  { name: 'stream', headers: {}, stream: true, expect: '200' },
  { name: 'paced', headers: { 'x-emulator-pace-ms': '5', 'x-emulator-deltas': '20' }, stream: true, expect: '200' },
  { name: 'gzip-sse', headers: { 'x-emulator-encoding': 'gzip', 'accept-encoding': 'gzip' }, stream: true, expect: '200' },
  { name: '429', headers: { 'x-emulator-status': '429' }, stream: false, expect: '429' },
  { name: '500', headers: { 'x-emulator-status': '500' }, stream: false, expect: '500' },
  { name: 'drop', headers: { 'x-emulator-drop-after': '3' }, stream: true, expect: '200' },
  { name: 'error-after', headers: { 'x-emulator-error-after': '2' }, stream: true, expect: '200' },
  { name: 'slow-headers', headers: { 'x-emulator-headers-delay-ms': '50' }, stream: false, expect: '200' },
  { name: 'abort', headers: { 'x-emulator-pace-ms': '10', 'x-emulator-deltas': '50' }, stream: true, expect: 'aborted' },
  { name: 'upload', headers: {}, stream: false, expect: '200' },
]

describe('mixed traffic through a small pool', () => {
  let emulator: Emulator
  let proxy: RunningProxy

  beforeAll(async () => {
    emulator = await createEmulator({ port: 0, recordLimit: 0 })
    proxy = await startProxy(emulator.url, { upstream: { origin: emulator.url, maxConnections: 8, poolTimeoutMs: 20_000, keepAliveTimeoutMs: 4_000 } })
  })

  afterAll(async () => {
    await proxy.close()
    await emulator.close()
  })

  test('660 exchanges of eleven kinds end as their kind says, and the proxy is idle afterwards', async () => {
    const dispatcher = new Agent({ connections: 64 })
    const outcomes = new Map<string, Map<string, number>>()
    const note = (kind: string, outcome: string): void => {
      const counts = outcomes.get(kind) ?? new Map<string, number>()
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1)
      outcomes.set(kind, counts)
    }
    const one = async (index: number): Promise<void> => {
      const kind = KINDS[index % KINDS.length] as Kind
      const content = kind.name === 'upload' ? 'x'.repeat(200_000) : 'hi'
      const body = JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 64, messages: [{ role: 'user', content }], stream: kind.stream })
      const controller = new AbortController()
      if (kind.name === 'abort') setTimeout(() => controller.abort(), 30 + (index % 7) * 10)
      try {
        const response = await request(`${proxy.url}/v1/messages`, {
          method: 'POST', headers: { ...BASE, ...kind.headers }, body, dispatcher, signal: controller.signal, headersTimeout: 15_000, bodyTimeout: 15_000,
        })
        await response.body.arrayBuffer()
        note(kind.name, String(response.statusCode))
      } catch (error) {
        note(kind.name, controller.signal.aborted ? 'aborted' : String((error as { code?: string }).code ?? error))
      }
    }
    try {
      for (let round = 0; round < 6; round++) await Promise.all(Array.from({ length: 110 }, (_, i) => one(round * 110 + i)))
    } finally {
      await dispatcher.close()
    }
    for (const kind of KINDS) expect([kind.name, Object.fromEntries(outcomes.get(kind.name) ?? [])]).toEqual([kind.name, { [kind.expect]: 60 }])
    // Idle: nothing in flight or queued, and every pooled upstream socket free.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const { inFlight, pool } = proxy.app.apt.stats()
    expect(inFlight).toBe(0)
    expect(pool.queued).toBe(0)
    expect(pool.running).toBe(0)
    expect(proxy.app.apt.inFlight()).toEqual({ requests: 0, streams: 0 })

    // Nothing of any exchange is left in the heap, however it ended: the client's connections are
    // closed, so the only upstream objects alive are the pooled connections themselves.
    const census = await liveInstances([...PER_EXCHANGE, 'WireConnection'])
    expect(census).toEqual({ ...Object.fromEntries(PER_EXCHANGE.map((name) => [name, 0])), WireConnection: census.WireConnection })
    expect(census.WireConnection).toBeLessThanOrEqual(8)
    expect(census.WireConnection).toBe(process.env.APT_TEST_ENGINE === 'undici' ? 0 : proxy.app.apt.stats().pool.connected)
  }, 60_000)
})
