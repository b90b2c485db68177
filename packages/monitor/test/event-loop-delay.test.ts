import { setTimeout as sleep } from 'node:timers/promises'
import { expect, test } from 'vitest'
import { createMonitor } from '../src/index.js'

test('a blocked event loop shows up in the event-loop delay sample and the windows', async () => {
  const monitor = createMonitor({ sampleIntervalMs: 0, sampleMemory: false, eventLoopResolutionMs: 5, alertRules: [] })
  try {
    expect(monitor.snapshot().eventLoopDelay).toBeNull()
    await sleep(20)
    const blockedUntil = performance.now() + 120
    while (performance.now() < blockedUntil) {
      // busy-wait: the event loop cannot run timers
    }
    await sleep(20)
    monitor.sample()
    const snapshot = monitor.snapshot()
    expect(snapshot.eventLoopDelay?.maxMs).toBeGreaterThanOrEqual(60)
    expect(snapshot.windows[0]?.eventLoopDelay?.maxMs).toBe(snapshot.eventLoopDelay?.maxMs)
  } finally {
    monitor.close()
  }
})
