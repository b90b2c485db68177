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
