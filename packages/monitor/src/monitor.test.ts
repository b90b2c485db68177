import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, test } from 'vitest'
import type { AlertTransition } from './alert-evaluator.js'
import { type AlertRule, defaultAlertRules } from './alert-rules.js'
import { createMonitor, MONITOR_ALERT_CHANNEL, type Monitor } from './monitor.js'
import type { MonitorError } from './monitor-error.js'
import type { MonitorOptions } from './monitor-options.js'

const MIB = 1024 * 1024
const monitors: Monitor[] = []

/** A monitor on a fake clock with no timer and no process sampling. */
function fakeMonitor (options: MonitorOptions = {}) {
  const clock = { now: 0 }
  const monitor = createMonitor({
    now: () => clock.now,
    sampleIntervalMs: 0,
    sampleMemory: false,
    sampleEventLoop: false,
    alertRules: [],
    ...options,
  })
  monitors.push(monitor)
  return { clock, monitor }
}

afterEach(() => {
  for (const monitor of monitors.splice(0)) monitor.close()
})

const windowOf = (monitor: Monitor, windowMs: number) => {
  const stats = monitor.snapshot().windows.find((window) => window.windowMs === windowMs)
  if (stats === undefined) throw new Error(`no ${windowMs} ms window`)
  return stats
}

describe('recording', () => {
  test('record() feeds every window; short windows forget first', () => {
    const { clock, monitor } = fakeMonitor()
    for (let index = 0; index < 10; index++) monitor.record({ durationMs: 100, status: 200, bytes: 10 })
    clock.now = 30_000
    monitor.record({ durationMs: 300, status: 502 })
    expect(windowOf(monitor, 10_000)).toMatchObject({ count: 1, errors: 1, durationMs: { max: 300 } })
    expect(windowOf(monitor, 60_000)).toMatchObject({ count: 11, errors: 1, bytes: 100, durationMs: { max: 300 } })
    clock.now = 61_000
    expect(windowOf(monitor, 60_000)).toMatchObject({ count: 1 })
    expect(windowOf(monitor, 300_000)).toMatchObject({ count: 11 })
    expect(monitor.snapshot().totals).toEqual({ count: 11, errors: 1, bytes: 100 })
  })

  test('a stream handle measures duration, time to first byte and time to first token separately', () => {
    const { clock, monitor } = fakeMonitor()
    const handle = monitor.start('/v1/messages')
    expect(monitor.activeStreams).toBe(1)
    clock.now = 40
    handle.firstByte()
    clock.now = 45
    handle.firstByte() // only the first call counts
    clock.now = 250
    handle.firstToken()
    clock.now = 1_000
    handle.finish({ status: 200, bytes: 2048, overheadUs: 120 })
    expect(monitor.activeStreams).toBe(0)
    const stats = windowOf(monitor, 10_000)
    expect(stats).toMatchObject({
      count: 1,
      bytes: 2048,
      durationMs: { max: 1000 },
      ttfbMs: { max: 40 },
      ttftMs: { max: 250 },
      overheadUs: { max: 120 },
      routes: [{ route: '/v1/messages', count: 1, errors: 0 }],
    })
  })

  test('finish() is idempotent and active streams peak is kept per window', () => {
    const { clock, monitor } = fakeMonitor()
    const first = monitor.start()
    const second = monitor.start()
    const third = monitor.start()
    expect(monitor.activeStreams).toBe(3)
    clock.now = 10
    first.finish({ status: 200 })
    first.finish({ status: 200 })
    second.finish({ status: 500, error: new Error('upstream reset') })
    expect(monitor.activeStreams).toBe(1)
    const stats = windowOf(monitor, 10_000)
    expect(stats).toMatchObject({ count: 2, errors: 1, activeStreams: 1, peakActiveStreams: 3 })
    third.finish({ status: 200 })
    expect(monitor.activeStreams).toBe(0)
  })

  test('track() records sync and async work, and errors without swallowing them', async () => {
    const { clock, monitor } = fakeMonitor()
    expect(
      monitor.track('sync', () => {
        clock.now += 5
        return 42
      }),
    ).toBe(42)
    expect(() =>
      monitor.track('sync', () => {
        throw new Error('boom')
      }),
    ).toThrow('boom')
    const resolved = monitor.track('async', async () => {
      clock.now += 20
      return 'ok'
    })
    await expect(resolved).resolves.toBe('ok')
    await expect(monitor.track('async', () => Promise.reject(new Error('nope')))).rejects.toThrow('nope')
    const stats = windowOf(monitor, 10_000)
    expect(stats).toMatchObject({ count: 4, errors: 2, durationMs: { max: 20 } })
    expect(stats.routes).toEqual([
      { route: 'async', count: 2, errors: 1 },
      { route: 'sync', count: 2, errors: 1 },
    ])
    // tracked work has no HTTP status
    expect(Object.values(stats.statusCounts).reduce((a, b) => a + b, 0)).toBe(0)
  })

  test('invalid samples throw APT_MONITOR_INVALID_ARGUMENT and record nothing', () => {
    const { monitor } = fakeMonitor()
    expect(() => monitor.record({ durationMs: -1, status: 200 })).toThrow(expect.objectContaining({ code: 'APT_MONITOR_INVALID_ARGUMENT' }))
    expect(() => monitor.record({ durationMs: 1, ttftMs: Number.NaN, status: 200 })).toThrow(/ttftMs/)
    expect(() => monitor.record({ durationMs: 1, status: 20.5 })).toThrow(/status/)
    const handle = monitor.start()
    expect(() => handle.finish({ status: -3 })).toThrow(expect.objectContaining({ code: 'APT_MONITOR_INVALID_ARGUMENT' }))
    expect(monitor.activeStreams).toBe(0)
    expect(monitor.snapshot().totals.count).toBe(0)
  })

  test('routes beyond maxRoutes are counted as (other)', () => {
    const { monitor } = fakeMonitor({ maxRoutes: 2 })
    for (const route of ['a', 'b', 'c', 'd', 'a']) monitor.record({ durationMs: 1, status: 200, route })
    expect(windowOf(monitor, 10_000).routes).toEqual([
      { route: '(other)', count: 2, errors: 0 },
      { route: 'a', count: 2, errors: 0 },
      { route: 'b', count: 1, errors: 0 },
    ])
  })
})

describe('memory', () => {
  test('reports the latest sample and its growth over each window', () => {
    const memory = { rss: 100 * MIB, heapUsed: 20 * MIB }
    const { clock, monitor } = fakeMonitor({ sampleMemory: true, memoryUsage: () => ({ ...memory }) })
    for (let second = 1; second <= 120; second++) {
      clock.now = second * 1_000
      memory.rss += MIB // +1 MiB per second
      monitor.sample()
    }
    const snapshot = monitor.snapshot()
    expect(snapshot.memory).toEqual({ rssBytes: 220 * MIB, heapUsedBytes: 20 * MIB, sampledAt: 120_000 })
    const short = snapshot.windows[0]
    const minute = snapshot.windows[1]
    // 10 s window at t=120 s covers slices from 111 s: first sample 211 MiB
    expect(short?.memory).toEqual({ rssBytes: 220 * MIB, heapUsedBytes: 20 * MIB, rssGrowthBytes: 9 * MIB, heapUsedGrowthBytes: 0 })
    // 1 min window covers slices from 66 s: first sample 166 MiB
    expect(minute?.memory?.rssGrowthBytes).toBe(54 * MIB)
  })

  test('memory is null when sampling is off', () => {
    const { monitor } = fakeMonitor()
    monitor.sample()
    expect(monitor.snapshot().memory).toBeNull()
    expect(monitor.snapshot().windows[0]?.memory).toBeNull()
  })
})

describe('alerts', () => {
  const p95: AlertRule = { ...(defaultAlertRules()[0] as AlertRule), windowMs: 10_000, holdMs: 5_000, minCount: 5 }

  test('fires after the hold time, resolves below the clear threshold, and calls callbacks', () => {
    const { clock, monitor } = fakeMonitor({ alertRules: [p95] })
    const seen: AlertTransition[] = []
    monitor.onAlert((transition) => seen.push(transition))

    const traffic = (durationMs: number): void => {
      for (let index = 0; index < 10; index++) monitor.record({ durationMs, status: 200 })
    }
    traffic(800)
    expect(monitor.evaluateAlerts()).toEqual([])
    expect(monitor.alerts()[0]).toMatchObject({ state: 'pending', value: 800 })
    clock.now = 4_999
    expect(monitor.evaluateAlerts()).toEqual([])
    clock.now = 5_000
    const [fired] = monitor.evaluateAlerts()
    expect(fired).toMatchObject({ state: 'firing', value: 800, at: 5_000, rule: { id: 'p95-latency' } })
    expect(seen).toEqual([fired])

    // slow requests roll out of the 10 s window; 470 ms is inside the hysteresis band
    clock.now = 11_000
    traffic(470)
    expect(monitor.evaluateAlerts()).toEqual([])
    expect(monitor.alerts()[0]?.state).toBe('firing')
    clock.now = 22_000
    traffic(400)
    const [resolved] = monitor.evaluateAlerts()
    expect(resolved).toMatchObject({ state: 'resolved', value: 400, at: 22_000 })
    expect(seen).toHaveLength(2)
  })

  test('too few requests (below minCount) is no data and never fires', () => {
    const { clock, monitor } = fakeMonitor({ alertRules: [{ ...p95, holdMs: 0 }] })
    for (let index = 0; index < 4; index++) monitor.record({ durationMs: 5_000, status: 200 })
    clock.now = 1_000
    expect(monitor.evaluateAlerts()).toEqual([])
    expect(monitor.alerts()[0]).toMatchObject({ state: 'ok', value: null })
  })

  test('the low-traffic rule fires only when enabled', () => {
    const rules = defaultAlertRules().map((rule) => ({ ...rule, holdMs: 0, windowMs: 10_000 }))
    const quiet = fakeMonitor({ alertRules: rules })
    quiet.clock.now = 1_000
    expect(quiet.monitor.evaluateAlerts()).toEqual([])
    const expecting = fakeMonitor({ alertRules: rules.map((rule) => (rule.id === 'min-rps' ? { ...rule, enabled: true } : rule)) })
    expecting.clock.now = 1_000
    expect(expecting.monitor.evaluateAlerts().map((transition) => [transition.rule.id, transition.state])).toEqual([['min-rps', 'firing']])
  })

  test('memory growth over the window fires the memory rule', () => {
    const memoryRule = { ...(defaultAlertRules()[3] as AlertRule), windowMs: 60_000, holdMs: 0 }
    let rss = 100 * MIB
    const { clock, monitor } = fakeMonitor({ alertRules: [memoryRule], sampleMemory: true, memoryUsage: () => ({ rss, heapUsed: 0 }) })
    clock.now = 10_000
    rss += 40 * MIB
    expect(monitor.tick()).toEqual([])
    clock.now = 20_000
    rss += 20 * MIB
    expect(monitor.tick()).toEqual([expect.objectContaining({ state: 'firing', value: 60 * MIB })])
  })

  test('unsubscribe stops callbacks; a throwing callback goes to onError and the others still run', () => {
    const errors: MonitorError[] = []
    const { monitor } = fakeMonitor({ alertRules: [{ ...p95, holdMs: 0, minCount: 1 }], onError: (error) => errors.push(error) })
    const calls: string[] = []
    const cause = new Error('callback bug')
    monitor.onAlert(() => {
      throw cause
    })
    const unsubscribe = monitor.onAlert(() => calls.push('removed'))
    monitor.onAlert((transition) => calls.push(transition.state))
    unsubscribe()
    monitor.record({ durationMs: 900, status: 200 })
    expect(monitor.evaluateAlerts()).toHaveLength(1)
    expect(calls).toEqual(['firing'])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ code: 'APT_MONITOR_CALLBACK_FAILED', cause })
  })

  test('transitions are published on the diagnostics channel', () => {
    const { monitor } = fakeMonitor({ alertRules: [{ ...p95, holdMs: 0, minCount: 1 }] })
    const published: unknown[] = []
    const listener = (message: unknown): void => {
      published.push(message)
    }
    subscribe(MONITOR_ALERT_CHANNEL, listener)
    try {
      monitor.record({ durationMs: 900, status: 200 })
      const transitions = monitor.evaluateAlerts()
      expect(published).toEqual(transitions)
      expect(published).toHaveLength(1)
    } finally {
      unsubscribe(MONITOR_ALERT_CHANNEL, listener)
    }
  })
})

describe('history and trends', () => {
  test('tick() records one entry per history interval, bounded by historySize', () => {
    const { clock, monitor } = fakeMonitor({ historyIntervalMs: 60_000, historySize: 3 })
    for (let minute = 1; minute <= 5; minute++) {
      for (let index = 0; index < minute; index++) monitor.record({ durationMs: minute * 10, status: index === 0 ? 500 : 200 })
      clock.now = minute * 60_000 - 1
      monitor.tick() // not due yet
      clock.now = minute * 60_000
      monitor.tick()
    }
    const history = monitor.history()
    expect(history.map((entry) => [entry.at, entry.count, entry.errors, entry.p95Ms])).toEqual([
      [180_000, 3, 1, 30],
      [240_000, 4, 1, 40],
      [300_000, 5, 1, 50],
    ])
    expect(history[0]).toMatchObject({ intervalMs: 60_000, requestsPerSecond: 3 / 60 })
    expect(history[0]?.errorRate).toBeCloseTo(1 / 3, 12)
  })

  test('p95 slope over the history and a regression against its median', () => {
    const { clock, monitor } = fakeMonitor({ regression: { minCount: 20, minHistory: 3, ratio: 1.5 } })
    const minute = (durationMs: number): void => {
      for (let index = 0; index < 50; index++) monitor.record({ durationMs, status: 200 })
      clock.now += 60_000
      monitor.tick()
    }
    for (const durationMs of [100, 110, 120, 130, 140]) minute(durationMs)
    const steady = monitor.trends()
    expect(steady.historyEntries).toBe(5)
    expect(steady.p95SlopeMsPerMinute).toBeCloseTo(10, 1)
    expect(steady.regression.regressed).toBe(false)

    for (let index = 0; index < 50; index++) monitor.record({ durationMs: 400, status: 200 })
    const slow = monitor.snapshot().trends.regression
    expect(slow).toMatchObject({ baselineSource: 'history', baselineP95Ms: 120, regressed: true })
    expect(slow.p95Ratio).toBeCloseTo(400 / 120, 2)

    monitor.setBaseline({ p95Ms: 300 })
    expect(monitor.trends().regression).toMatchObject({ baselineSource: 'explicit', regressed: false })
    monitor.setBaseline(null)
    expect(monitor.trends().regression.baselineSource).toBe('history')
  })
})

describe('options and lifecycle', () => {
  test('invalid options report every problem at once', () => {
    let thrown: unknown
    try {
      createMonitor({ windowsMs: [0, 1000], slicesPerWindow: 0, sampleIntervalMs: -1, historySize: 1.5, alertRules: defaultAlertRules() })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toMatchObject({ name: 'MonitorError', code: 'APT_MONITOR_INVALID_OPTIONS' })
    const message = (thrown as Error).message
    for (const part of ['windowsMs entries must be positive integers', 'slicesPerWindow', 'sampleIntervalMs', 'historySize', "alert rule 'p95-latency' uses windowMs 60000"]) {
      expect(message).toContain(part)
    }
  })

  test('after close(): sampling throws APT_MONITOR_CLOSED, recording is ignored, snapshot still works', () => {
    const { monitor } = fakeMonitor()
    monitor.record({ durationMs: 1, status: 200 })
    const open = monitor.start()
    monitor.close()
    monitor.close() // idempotent
    expect(() => monitor.tick()).toThrow(expect.objectContaining({ code: 'APT_MONITOR_CLOSED' }))
    expect(() => monitor.evaluateAlerts()).toThrow(expect.objectContaining({ code: 'APT_MONITOR_CLOSED' }))
    monitor.record({ durationMs: 1, status: 200 })
    open.finish({ status: 200 })
    monitor.start().finish({ status: 200 })
    expect(monitor.snapshot().totals.count).toBe(1)
  })
})
