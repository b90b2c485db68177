import { expect, test } from 'vitest'
import { createMonitor } from '../src/index.js'

function findNonFinite (value: unknown, path = '$'): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [path]
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, child]) => findNonFinite(child, `${path}.${key}`))
}

test('snapshot() is plain JSON: round-trips unchanged, with no NaN or Infinity', () => {
  let now = 1_000_000
  const monitor = createMonitor({ now: () => now, sampleIntervalMs: 0, sampleEventLoop: false, memoryUsage: () => ({ rss: 5e7, heapUsed: 2e7 }) })
  try {
    const empty = monitor.snapshot()
    expect(findNonFinite(empty)).toEqual([])
    expect(JSON.parse(JSON.stringify(empty))).toEqual(empty)

    for (let index = 0; index < 100; index++) monitor.record({ durationMs: index, ttfbMs: 1, status: index % 10 === 0 ? 503 : 200, route: '/v1/messages' })
    monitor.start('/v1/messages')
    now += 61_000
    monitor.tick()
    const busy = monitor.snapshot()
    expect(findNonFinite(busy)).toEqual([])
    expect(JSON.parse(JSON.stringify(busy))).toEqual(busy)
    expect(Object.keys(busy).sort()).toEqual(['activeStreams', 'alerts', 'at', 'eventLoopDelay', 'memory', 'startedAt', 'totals', 'trends', 'uptimeMs', 'windows'])
    expect(busy.windows.map((window) => window.windowMs)).toEqual([10_000, 60_000, 300_000])
    expect(busy.alerts.map((alert) => alert.rule.id)).toEqual(['p95-latency', 'p99-latency', 'error-rate', 'memory-growth'])
    expect(busy.activeStreams).toBe(1)
  } finally {
    monitor.close()
  }
})
