import type { ConnectionStats } from '@apt/adapter'
import { describe, expect, test } from 'vitest'
import { createServerMetrics, type RequestRecord } from './metrics.js'
import { ROUTE_NAMES, type RouteName } from './routes-table.js'

const STATS: ConnectionStats = {
  requests: 0, hits: 0, misses: 0, connectionsOpened: 0, retries: 0, clientAborts: 0, errors: 0,
  timeouts: { connect: 0, headers: 0, body: 0, poolWait: 0, total: 0 },
  inFlight: 0, pool: { connected: 0, free: 0, pending: 0, queued: 0, running: 0, size: 0 },
}

function record (route: RouteName, method: string, status: number, model: string | undefined, tokens = 0): RequestRecord {
  return {
    route, path: '/v1/x', method, status, durationMs: 1, ttfbMs: 1, bytesOut: 10, isStream: false, errorCode: undefined,
    overheadMs: 0.01, ttftMs: -1,
    usage: model === undefined
      ? undefined
      : {
          model, firstTokenAt: -1, stopReason: 'end_turn', streamErrorType: undefined, events: 0,
          usage: { inputTokens: tokens, outputTokens: 2 * tokens, cacheCreationInputTokens: 0, cacheReadInputTokens: tokens === 0 ? 0 : 1 },
        },
  }
}

/** The value of each series of one metric, keyed by its label text. */
function series (text: string, name: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(name.length, at), Number(line.slice(at + 1)))
  }
  return out
}

describe('createServerMetrics: each request lands in the series of its own labels', () => {
  test('route, method, status class and model combine into distinct series; tokens by type and model', async () => {
    const metrics = createServerMetrics({
      processMetrics: false,
      connectionStats: () => STATS,
      gauges: () => ({ inFlightRequests: 0, inFlightStreams: 0, draining: false }),
    })
    const expected = new Map<string, number>()
    const tokens = new Map<string, number>()
    const methods = ['POST', 'GET', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND']
    const statuses = [101, 200, 302, 404, 529]
    const models = [undefined, 'claude-a', 'claude-b', 'not a model!']
    let n = 0
    for (let round = 0; round < 3; round++) {
      for (const route of ROUTE_NAMES) {
        for (const method of methods) {
          for (const status of statuses) {
            for (const model of models) {
              // Not every combination every round, so counts differ between series.
              if ((n++ + round) % 3 === 0) continue
              metrics.observe(record(route, method, status, model, 5))
              const modelLabel = model === undefined ? 'none' : model === 'not a model!' ? 'other' : model
              const methodLabel = method === 'PROPFIND' ? 'OTHER' : method
              const key = `{route="${route}",method="${methodLabel}",status_class="${String(status)[0]}xx",model="${modelLabel}"}`
              expected.set(key, (expected.get(key) ?? 0) + 1)
              if (model !== undefined) {
                for (const [type, amount] of [['input', 5], ['output', 10], ['cache_read', 1]] as const) {
                  const tokenKey = `{type="${type}",model="${modelLabel}"}`
                  tokens.set(tokenKey, (tokens.get(tokenKey) ?? 0) + amount)
                }
              }
            }
          }
        }
      }
    }
    const text = await metrics.registry.metrics()
    expect(series(text, 'apt_http_requests_total')).toEqual(expected)
    expect(series(text, 'apt_tokens_total')).toEqual(tokens)
    // What /metrics serves is prom-client's own text, byte for byte, written faster.
    expect(await metrics.text()).toBe(text)
    metrics.close()
  })

  test('text() is registry.metrics() byte for byte: streams, every histogram, prom-client metrics beside them, default labels', async () => {
    const metrics = createServerMetrics({
      processMetrics: false,
      connectionStats: () => STATS,
      gauges: () => ({ inFlightRequests: 2, inFlightStreams: 1, draining: false }),
      alerts: () => [{ id: 'error-rate', firing: true }],
    })
    expect(await metrics.text()).toBe(await metrics.registry.metrics()) // nothing observed yet
    const values = [0, 0.0004, 0.003, 0.2, 1.5, 42, 700, Number.POSITIVE_INFINITY]
    values.forEach((ms, i) => {
      const stream = record(ROUTE_NAMES[i % ROUTE_NAMES.length] as RouteName, i % 2 === 0 ? 'POST' : 'GET', i === 3 ? 529 : 200, i % 3 === 0 ? 'claude-a' : 'claude-b', i)
      stream.durationMs = ms
      stream.ttfbMs = ms / 2
      stream.overheadMs = ms / 100
      stream.isStream = i % 2 === 0
      if (stream.usage !== undefined) {
        stream.usage.firstTokenAt = 1
        stream.usage.streamErrorType = i === 5 ? 'overloaded_error' : undefined
        stream.usage.stopReason = i === 6 ? 'a "new" \\ reason\n' : 'end_turn'
      }
      stream.ttftMs = ms / 3
      metrics.observe(stream)
    })
    const text = await metrics.text()
    expect(text).toBe(await metrics.registry.metrics())
    for (const name of ['apt_http_request_duration_seconds_bucket', 'apt_time_to_first_token_seconds_bucket', 'apt_stream_errors_total', 'apt_alert_firing']) expect(text).toContain(name)
    // With default labels on every line, prom-client writes it all.
    metrics.registry.setDefaultLabels({ instance: 'a"b' })
    const labelled = await metrics.text()
    expect(labelled).toBe(await metrics.registry.metrics())
    expect(labelled).toContain('instance="a\\"b"')
    metrics.close()
  })
})
