import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, test } from 'vitest'
import { IndexedHistogram, KeyedCounter, KeyedHistogram } from './fast-metrics.js'

const BUCKETS = [0.001, 0.01, 0.1, 1]
const VALUES = [0.0005, 0.001, 0.002, 0.05, 0.5, 3, 0.01, 0.0001]

describe('fast metrics expose exactly what prom-client would', () => {
  test('IndexedHistogram matches a prom-client Histogram', async () => {
    const reference = new Registry()
    const histogram = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['route'] as const, buckets: BUCKETS, registers: [reference] })
    const mine = new Registry()
    const fast = new IndexedHistogram({ name: 'h_seconds', help: 'h', series: [{ route: 'a' }, { route: 'b' }], buckets: BUCKETS })
    mine.registerMetric(fast as unknown as Parameters<Registry['registerMetric']>[0])
    VALUES.forEach((value, i) => {
      const route = i % 3 === 0 ? 'b' : 'a'
      histogram.observe({ route }, value)
      fast.observe(route === 'a' ? 0 : 1, value)
    })
    // Same lines; series order may differ (prom-client orders by first observation).
    const lines = (text: string): string[] => text.split('\n').sort()
    expect(lines(await mine.metrics())).toEqual(lines(await reference.metrics()))
  })

  test('KeyedHistogram matches a prom-client Histogram', async () => {
    const reference = new Registry()
    const histogram = new Histogram({ name: 'k_seconds', help: 'k', labelNames: ['model'] as const, buckets: BUCKETS, registers: [reference] })
    const mine = new Registry()
    const fast = new KeyedHistogram({ name: 'k_seconds', help: 'k', buckets: BUCKETS })
    mine.registerMetric(fast as unknown as Parameters<Registry['registerMetric']>[0])
    VALUES.forEach((value, i) => {
      const model = i % 3 === 0 ? 'claude-b' : 'claude-a'
      histogram.observe({ model }, value)
      fast.observe(model, () => ({ model }), value)
    })
    // Series in order of first observation, as prom-client orders them.
    expect(await mine.metrics()).toBe(await reference.metrics())
  })

  test('KeyedCounter matches a prom-client Counter', async () => {
    const reference = new Registry()
    const counter = new Counter({ name: 'c_total', help: 'c', labelNames: ['type', 'model'] as const, registers: [reference] })
    const mine = new Registry()
    const fast = new KeyedCounter({ name: 'c_total', help: 'c' })
    mine.registerMetric(fast as unknown as Parameters<Registry['registerMetric']>[0])
    for (const [type, model, amount] of [['input', 'm1', 5], ['output', 'm1', 7], ['input', 'm1', 3], ['input', 'm2', 1]] as const) {
      counter.inc({ type, model }, amount)
      fast.inc(type + model, () => ({ type, model }), amount)
    }
    expect(await mine.metrics()).toBe(await reference.metrics())
  })

  test('promText() is the text prom-client writes for the same metric: escapes, large and inexact values, empty metrics, help', async () => {
    const odd = ['a"b', 'back\\slash', 'new\nline', 'plain', '']
    const reference = new Registry()
    const counter = new Counter({ name: 'odd_total', help: 'help with \\ and \n', labelNames: ['model'] as const, registers: [reference] })
    const histogram = new Histogram({ name: 'odd_seconds', help: 'h', labelNames: ['model'] as const, buckets: BUCKETS, registers: [reference] })
    const indexedReference = new Histogram({ name: 'idx_seconds', help: 'i', labelNames: ['route', 'kind'] as const, buckets: BUCKETS, registers: [reference] })
    const fastCounter = new KeyedCounter({ name: 'odd_total', help: 'help with \\ and \n' })
    const fastHistogram = new KeyedHistogram({ name: 'odd_seconds', help: 'h', buckets: BUCKETS })
    const series = [{ route: 'r"1', kind: 'json' }, { route: 'r\\2', kind: 'stream' }]
    const fastIndexed = new IndexedHistogram({ name: 'idx_seconds', help: 'i', series, buckets: BUCKETS })
    const empty = new KeyedCounter({ name: 'empty_total', help: 'nothing yet' })
    expect(empty.promText()).toBe('# HELP empty_total nothing yet\n# TYPE empty_total counter')
    for (const [i, model] of odd.entries()) {
      counter.inc({ model }, i + 0.5)
      fastCounter.inc(model, () => ({ model }), i + 0.5)
      for (const value of [...VALUES, 1e9, 12345.678]) {
        histogram.observe({ model }, value)
        fastHistogram.observe(model, () => ({ model }), value)
      }
    }
    for (const value of [...VALUES, 0.1 + 0.2]) {
      indexedReference.observe(series[0] as { route: string, kind: string }, value)
      fastIndexed.observe(0, value)
    }
    // Series 1 unobserved: prom-client has no line for it; the indexed histogram writes its zeros (it always did).
    const indexedLines = fastIndexed.promText().split('\n').filter((line) => !line.includes('r\\\\2'))
    expect(indexedLines.join('\n')).toBe(await reference.getSingleMetricAsString('idx_seconds'))
    expect(fastCounter.promText()).toBe(await reference.getSingleMetricAsString('odd_total'))
    expect(fastHistogram.promText()).toBe(await reference.getSingleMetricAsString('odd_seconds'))
    // And what a registry writes through get() (the path prom-client takes) is the same text.
    const mine = new Registry()
    for (const metric of [fastCounter, fastHistogram, fastIndexed]) mine.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
    expect(await mine.metrics()).toBe(`${[fastCounter.promText(), fastHistogram.promText(), fastIndexed.promText()].join('\n\n')}\n`)
  })
})
