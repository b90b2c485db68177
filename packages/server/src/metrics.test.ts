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
    metrics.close()
  })
})
