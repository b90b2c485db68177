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
