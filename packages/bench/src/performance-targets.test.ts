import { describe, expect, it } from 'vitest'
import type { BenchResult, TargetFigures } from './bench-result.js'
import { evaluatePerformanceTargets } from './performance-targets.js'

/** A run's result with only what the targets read: figures per target, the machine's crossing, the stream settings. */
function resultWith(figures: Record<string, TargetFigures>): BenchResult {
  return {
    figures,
    crossCore: { rounds: 5, fromCpus: '1', toCpus: '0', p50Us: 80, p99Us: 600 },
    settings: { streamEvents: 64, streamPaceMs: 20 },
  } as unknown as BenchResult
}

const PROXY: TargetFigures = {
  latency: { addedP50Us: 160, addedP99Us: 250 },
  cpu: { usPerRequest: 28, upstreamUsPerRequest: 9 },
  ttfe: { addedFirstEventP99Us: 4200 },
  stall: { maxStreamsHeld: 512 },
  memory: { streams: 256, kbPerStream: 21.7, marginalKbPerStream: 12.9 },
} as unknown as TargetFigures

const DIRECT: TargetFigures = { stall: { maxStreamsHeld: 512 }, latency: { p50Ms: 0.02, p99Ms: 0.05 }, ttfe: { firstEventP99Ms: 1.1 } } as unknown as TargetFigures

function row(rows: ReturnType<typeof evaluatePerformanceTargets>, start: string): string {
  return rows.find((candidate) => candidate.figure.startsWith(start))?.reference ?? 'no such row'
}

describe('performance targets beside the references', () => {
  it('shows nginx and node-relay beside each figure they were measured for', () => {
    const rows = evaluatePerformanceTargets(resultWith({
      proxy: PROXY,
      direct: DIRECT,
      nginx: {
        latency: { addedP50Us: 150, addedP99Us: 200 },
        cpu: { usPerRequest: 14 },
        ttfe: { addedFirstEventP99Us: -800 },
        stall: { maxStreamsHeld: 256 },
        memory: { kbPerStream: 17.2, marginalKbPerStream: 17.7 },
      } as unknown as TargetFigures,
      'node-relay': {
        latency: { addedP50Us: 171, addedP99Us: 295 },
        cpu: { usPerRequest: 17 },
        ttfe: { addedFirstEventP99Us: 1500 },
        stall: { maxStreamsHeld: 256 },
        memory: { kbPerStream: 38.7, marginalKbPerStream: 16.9 },
      } as unknown as TargetFigures,
    }))
    expect(row(rows, 'proxy CPU per request')).toBe('emulator 9 µs; nginx 14 µs, node-relay 17 µs')
    expect(row(rows, 'added latency p50')).toBe('direct p50 20 µs; 2 cross-core round trips 160 µs, nginx +150 µs, node-relay +171 µs')
    expect(row(rows, 'added latency p99')).toBe('direct p99 50 µs; cross-core round trip p99 600 µs, nginx +200 µs, node-relay +295 µs')
    expect(row(rows, 'added time to first event')).toBe('direct p99 1100 µs; nginx −800 µs, node-relay +1500 µs')
    expect(row(rows, 'paced streams held')).toBe('load side (direct) 512; nginx 256, node-relay 256')
    expect(row(rows, 'RSS per open stream')).toBe('nginx 17.2 KiB, node-relay 38.7 KiB')
    expect(row(rows, 'RSS per further stream')).toBe('nginx 17.7 KiB, node-relay 16.9 KiB')
  })

  it('leaves out a reference that was not measured', () => {
    const rows = evaluatePerformanceTargets(resultWith({ proxy: PROXY, direct: DIRECT }))
    expect(row(rows, 'proxy CPU per request')).toBe('emulator 9 µs')
    expect(row(rows, 'added time to first event')).toBe('direct p99 1100 µs')
    expect(row(rows, 'paced streams held')).toBe('load side (direct) 512')
    expect(row(rows, 'RSS per open stream')).toBe('')
    expect(rows.map((target) => target.met)).toEqual([true, false, true, null, null, false, true, false, true, null])
  })
})
