import { afterEach, expect, test, vi } from 'vitest'
import { createMonitor } from '../src/index.js'

afterEach(() => {
  vi.useRealTimers()
})

test('one refreshed timer drives tick(); close() leaves no timer behind', () => {
  vi.useFakeTimers()
  const memoryUsage = vi.fn(() => ({ rss: 1, heapUsed: 1 }))
  const monitor = createMonitor({ sampleIntervalMs: 1_000, sampleEventLoop: false, memoryUsage, alertRules: [] })
  expect(vi.getTimerCount()).toBe(1)
  expect(memoryUsage).toHaveBeenCalledTimes(1) // initial sample

  vi.advanceTimersByTime(3_000)
  expect(memoryUsage).toHaveBeenCalledTimes(4) // one tick per second
  expect(vi.getTimerCount()).toBe(1) // refreshed, never duplicated

  monitor.close()
  expect(vi.getTimerCount()).toBe(0)
  vi.advanceTimersByTime(10_000)
  expect(memoryUsage).toHaveBeenCalledTimes(4)
})

test('sampleIntervalMs 0 creates no timer at all', () => {
  vi.useFakeTimers()
  const monitor = createMonitor({ sampleIntervalMs: 0, sampleEventLoop: false, sampleMemory: false })
  expect(vi.getTimerCount()).toBe(0)
  monitor.close()
})

test('a failing periodic tick goes to onError and the timer keeps running', () => {
  vi.useFakeTimers()
  let fail = false
  let rss = 0
  const onError = vi.fn()
  const monitor = createMonitor({
    sampleIntervalMs: 100,
    sampleEventLoop: false,
    alertRules: [],
    onError,
    memoryUsage: () => {
      if (fail) throw new Error('EMFILE')
      rss += 1
      return { rss, heapUsed: 1 }
    },
  })
  fail = true
  vi.advanceTimersByTime(100)
  expect(onError).toHaveBeenCalledWith(expect.objectContaining({ code: 'APT_MONITOR_SAMPLE_FAILED', cause: expect.objectContaining({ message: 'EMFILE' }) }))
  expect(monitor.snapshot().memory).toMatchObject({ rssBytes: 1 })
  fail = false
  vi.advanceTimersByTime(100)
  expect(monitor.snapshot().memory).toMatchObject({ rssBytes: 2 })
  monitor.close()
})

test('the real timer and event-loop sampling do not keep the process alive', () => {
  const refTimers = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length
  const before = refTimers()
  const monitor = createMonitor({ sampleIntervalMs: 10 })
  // getActiveResourcesInfo lists only resources that hold the event loop open
  expect(refTimers()).toBe(before)
  monitor.close()
  expect(refTimers()).toBe(before)
})
