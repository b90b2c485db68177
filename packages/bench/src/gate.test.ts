import { describe, expect, test } from 'vitest'
import type { BenchResult } from './bench-result.js'
import { type Baseline, compareWithBaseline, figureKind, gateFigures } from './gate.js'

/** A run's figures as far as the gate reads them: apt's and two references' requests a second at c=128. */
function result (rps: Record<string, number>): BenchResult {
  const figures: Record<string, unknown> = {}
  for (const [name, requestsPerSecond] of Object.entries(rps)) {
    figures[name] = { throughput: [{ concurrency: 1, requestsPerSecond: requestsPerSecond / 4 }, { concurrency: 128, requestsPerSecond, ratioToDirect: 0.5 }] }
  }
  return { figures, settings: { concurrencyLevels: [1, 128], ttfeStreams: 100, memoryStreams: 256, testType: 'all' } } as unknown as BenchResult
}

const baseline: Baseline = {
  tool: '@apt/bench',
  version: 1,
  createdAt: '2026-11-29T00:00:00.000Z',
  source: 'test',
  figures: {
    'throughput_vs_undici-minimal_c128': { label: 'x', value: 1.5, better: 'higher', tolerance: { relative: 0.3 } },
    'throughput_vs_fastify-http-proxy_c128': { label: 'y', value: 2.5, better: 'higher', tolerance: { relative: 0.3 } },
    throughput_ratio_c128: { label: 'z', value: 0.5, better: 'higher', tolerance: { relative: 0.35 } },
  },
}

describe('throughput against the reference proxies (gated)', () => {
  test('apt requests a second divided by each reference\'s at the top level, in the same run', () => {
    const figures = gateFigures(result({ proxy: 6000, 'undici-minimal': 4000, 'fastify-http-proxy': 2000 }))
    expect(figures.find((figure) => figure.key === 'throughput_vs_undici-minimal_c128')).toMatchObject({ value: 1.5, better: 'higher', optional: true })
    expect(figures.find((figure) => figure.key === 'throughput_vs_fastify-http-proxy_c128')?.value).toBe(3)
    expect(figureKind('throughput_vs_undici-minimal_c128')).toBe('throughput_vs_reference')
    expect(figureKind('throughput_ratio_c128')).toBe('throughput_ratio')
  })

  test('below the limit is a regression; a run without the references skips them, even a complete one', () => {
    const slower = compareWithBaseline(baseline, gateFigures(result({ proxy: 4000, 'undici-minimal': 4000, 'fastify-http-proxy': 2000 })), { complete: true })
    expect(slower.rows.find((row) => row.key === 'throughput_vs_undici-minimal_c128')).toMatchObject({ status: 'REGRESSED', now: 1, limit: 1.05 })
    expect(slower.rows.find((row) => row.key === 'throughput_vs_fastify-http-proxy_c128')?.status).toBe('OK')
    expect(slower.regressed).toBe(true)

    const alone = compareWithBaseline(baseline, gateFigures(result({ proxy: 6000 })), { complete: true })
    expect(alone.rows.filter((row) => row.key.startsWith('throughput_vs_')).map((row) => row.status)).toEqual(['SKIPPED', 'SKIPPED'])
    expect(alone.regressed).toBe(false)
    // A figure the gate cannot do without is still MISSING in a complete run.
    const noThroughput = compareWithBaseline(baseline, gateFigures(result({})), { complete: true })
    expect(noThroughput.rows.find((row) => row.key === 'throughput_ratio_c128')?.status).toBe('MISSING')
  })
})

describe('paced streams against the load side (gated)', () => {
  /** A complete run's stall figures: the largest level each target held. */
  function held (proxy: number, direct: number): BenchResult {
    const stall = (own: number, ratio: number | null): unknown => ({ events: 64, paceMs: 20, limitMs: 50, levels: [{ streams: 64 }], maxStreamsHeld: own, ratioToDirect: ratio })
    return {
      figures: { proxy: { stall: stall(proxy, direct === 0 ? null : proxy / direct) }, direct: { stall: stall(direct, null) } },
      settings: { concurrencyLevels: [1, 128], ttfeStreams: 100, memoryStreams: 256, testType: 'all' },
    } as unknown as BenchResult
  }
  const pacedBaseline: Baseline = { ...baseline, figures: { paced_streams_ratio: { label: 'p', value: 1, better: 'higher', tolerance: { relative: 0.75 } } } }
  const row = (proxy: number, direct: number) => compareWithBaseline(pacedBaseline, gateFigures(held(proxy, direct)), { complete: true })

  test('the proxy\'s level ÷ the load side\'s, capped at 1; two levels fewer than the load side is still within 75 %', () => {
    expect(row(128, 256).rows[0]).toMatchObject({ now: 0.5, status: 'OK' })
    expect(row(512, 256).rows[0]).toMatchObject({ now: 1, status: 'OK' })
    expect(row(32, 256).rows[0]).toMatchObject({ now: 0.125, status: 'REGRESSED' })
  })

  test('a load side that held no level: a proxy that held one counts as 1; neither holding one is SKIPPED, not a regression', () => {
    const proxyHeld = row(128, 0)
    expect(proxyHeld.rows[0]).toMatchObject({ now: 1, status: 'OK' })
    expect(proxyHeld.regressed).toBe(false)
    const neither = row(0, 0)
    expect(neither.rows[0]).toMatchObject({ status: 'SKIPPED' })
    expect(neither.regressed).toBe(false)
    // A proxy that held nothing while the load side held a level is a regression.
    expect(row(0, 64).rows[0]).toMatchObject({ now: 0, status: 'REGRESSED' })
  })
})

describe('added latency at c=1 against the cross-core round trip (gated)', () => {
  function latency (added50: number, added99: number, crossCore: { p50Us: number } | null): BenchResult {
    return {
      figures: { proxy: { latency: { addedP50Us: added50, addedP99Us: added99 } }, direct: { latency: { p50Ms: 0.03 } } },
      crossCore: crossCore === null ? null : { rounds: 5, fromCpus: '1', toCpus: '0', p99Us: crossCore.p50Us * 2, ...crossCore },
      settings: { concurrencyLevels: [1, 128], ttfeStreams: 100, memoryStreams: 256, testType: 'all' },
    } as unknown as BenchResult
  }
  const latencyBaseline: Baseline = {
    ...baseline,
    figures: {
      added_latency_p50_per_crossing: { label: 'p50', value: 2, better: 'lower', tolerance: { relative: 0.5, absolute: 0.5 } },
      added_latency_p99_per_crossing: { label: 'p99', value: 4, better: 'lower', tolerance: { relative: 2, absolute: 1 } },
    },
  }

  test('the added p50 and p99 are divided by the round trip\'s p50, not by direct\'s', () => {
    const figures = gateFigures(latency(200, 400, { p50Us: 100 }))
    expect(figures.find((figure) => figure.key === 'added_latency_p50_per_crossing')).toMatchObject({ value: 2, better: 'lower', optional: false })
    expect(figures.find((figure) => figure.key === 'added_latency_p99_per_crossing')?.value).toBe(4)
    // The same proxy on a machine whose crossings cost half as much: twice the ratio, a regression.
    const report = compareWithBaseline(latencyBaseline, gateFigures(latency(200, 400, { p50Us: 50 })), { complete: true })
    expect(report.rows.filter((row) => row.key.startsWith('added_')).map((row) => [row.key, row.status])).toEqual([['added_latency_p50_per_crossing', 'REGRESSED'], ['added_latency_p99_per_crossing', 'OK']])
    expect(report.regressed).toBe(true)
  })

  test('a run without the round trip (not pinned) skips both figures instead of failing', () => {
    const report = compareWithBaseline(latencyBaseline, gateFigures(latency(200, 400, null)), { complete: true })
    expect(report.rows.filter((row) => row.key.startsWith('added_')).map((row) => row.status)).toEqual(['SKIPPED', 'SKIPPED'])
    expect(report.regressed).toBe(false)
  })
})
