import { type BenchResult, DIRECT, PROXY, type TargetFigures } from './bench-result.js'

/** One target of the performance issue, checked against a run (informational: the gate is `gate.ts`). */
export interface PerformanceTarget {
  figure: string
  target: string
  now: string
  /** What it was compared with in the same run, if anything. */
  reference: string
  met: boolean | null
}

function us(value: number | null | undefined): string {
  return value == null ? 'n/a' : `${Math.round(value)} µs`
}

/**
 * The references a figure is shown beside when they were measured: nginx, and node-relay (Node's
 * floor: bytes copied, no HTTP), so a figure that even a bare relay in Node misses reads as such.
 */
const BESIDE = ['nginx', 'node-relay'] as const

function beside(result: BenchResult, pick: (figures: TargetFigures) => number | null | undefined, format: (value: number) => string): string[] {
  const parts: string[] = []
  for (const name of BESIDE) {
    const figures = result.figures[name]
    const value = figures === undefined ? undefined : pick(figures)
    if (value != null) parts.push(`${name} ${format(value)}`)
  }
  return parts
}

const joined = (parts: readonly string[]): string => (parts.length === 0 ? '' : `; ${parts.join(', ')}`)

/**
 * The proxy's figures against the targets of the performance issue
 * (CPU ≤ 80 µs per request, added p50/p99 ≤ 100/300 µs, throughput ≥ 1.5×
 * undici-minimal and ≥ 2.5× @fastify/http-proxy, added first-event p99 ≤ 1 ms,
 * every paced-stream level the load side holds, ≤ 16 KiB per stream, reuse ≥ 0.999).
 */
export function evaluatePerformanceTargets(result: BenchResult): PerformanceTarget[] {
  const proxy = result.figures[PROXY]
  const direct = result.figures[DIRECT]
  const rows: PerformanceTarget[] = []
  const cpu = proxy?.cpu?.usPerRequest
  rows.push({
    figure: `proxy CPU per request (c=${proxy?.cpu?.concurrency ?? '?'})`,
    target: '≤ 80 µs',
    now: us(cpu),
    reference: `emulator ${us(proxy?.cpu?.upstreamUsPerRequest)}${joined(beside(result, (figures) => figures.cpu?.usPerRequest, us))}`,
    met: cpu == null ? null : cpu <= 80,
  })
  const added50 = proxy?.latency?.addedP50Us
  const added99 = proxy?.latency?.addedP99Us
  // What the machine itself adds (two crossings between the proxy's CPU and the load side's), beside the target.
  const floor = result.crossCore
  const latencyBeside = (which: 'p50' | 'p99'): string => {
    const parts: string[] = []
    if (floor != null) parts.push(which === 'p50' ? `2 cross-core round trips ${us(2 * floor.p50Us)}` : `cross-core round trip p99 ${us(floor.p99Us)}`)
    parts.push(...beside(result, (figures) => (which === 'p50' ? figures.latency?.addedP50Us : figures.latency?.addedP99Us), (value) => `+${us(value)}`))
    return joined(parts)
  }
  rows.push({ figure: 'added latency p50 (c=1)', target: '≤ 100 µs', now: us(added50), reference: `direct p50 ${us(direct?.latency === undefined ? null : direct.latency.p50Ms * 1000)}${latencyBeside('p50')}`, met: added50 == null ? null : added50 <= 100 })
  rows.push({ figure: 'added latency p99 (c=1)', target: '≤ 300 µs', now: us(added99), reference: `direct p99 ${us(direct?.latency === undefined ? null : direct.latency.p99Ms * 1000)}${latencyBeside('p99')}`, met: added99 == null ? null : added99 <= 300 })
  const top = proxy?.throughput?.at(-1)
  for (const [name, factor] of [['undici-minimal', 1.5], ['fastify-http-proxy', 2.5]] as const) {
    const other = result.figures[name]?.throughput?.find((level) => level.concurrency === top?.concurrency)
    const ratio = top === undefined || other === undefined || other.requestsPerSecond === 0 ? null : top.requestsPerSecond / other.requestsPerSecond
    rows.push({
      figure: `throughput c=${top?.concurrency ?? '?'} ÷ ${name}`,
      target: `≥ ${factor}×`,
      now: ratio === null ? 'n/a' : `${ratio.toFixed(2)}×`,
      reference: other === undefined ? `${name} not measured` : `${name} ${other.requestsPerSecond} req/s`,
      met: ratio === null ? null : ratio >= factor,
    })
  }
  const ttfe = proxy?.ttfe?.addedFirstEventP99Us
  rows.push({
    figure: `added time to first event p99 (${proxy?.ttfe?.streams ?? '?'} streams)`,
    target: '≤ 1000 µs',
    now: us(ttfe),
    reference: `direct p99 ${us(direct?.ttfe === undefined ? null : direct.ttfe.firstEventP99Ms * 1000)}${joined(beside(result, (figures) => figures.ttfe?.addedFirstEventP99Us, (value) => `${value < 0 ? '−' : '+'}${us(Math.abs(value))}`))}`,
    met: ttfe == null ? null : ttfe <= 1000,
  })
  const held = proxy?.stall?.maxStreamsHeld
  const loadSide = direct?.stall?.maxStreamsHeld
  rows.push({
    figure: `paced streams held (${result.settings.streamEvents} events, ${result.settings.streamPaceMs} ms apart)`,
    target: 'every level the load side holds',
    now: held == null ? 'n/a' : String(held),
    reference: `load side (direct) ${loadSide ?? 'n/a'}${joined(beside(result, (figures) => figures.stall?.maxStreamsHeld, String))}`,
    met: held == null || loadSide == null ? null : held >= loadSide,
  })
  const memory = proxy?.memory?.kbPerStream
  const kib = (value: number): string => `${value.toFixed(1)} KiB`
  rows.push({
    figure: `RSS per open stream (${proxy?.memory?.streams ?? '?'} streams)`,
    target: '≤ 16 KiB',
    now: memory == null ? 'n/a' : kib(memory),
    reference: beside(result, (figures) => figures.memory?.kbPerStream, kib).join(', '),
    met: memory == null ? null : memory <= 16,
  })
  const marginal = proxy?.memory?.marginalKbPerStream
  rows.push({
    figure: `RSS per further stream, loaded (${proxy?.memory?.streams ?? '?'} → ${(proxy?.memory?.streams ?? 0) * 2})`,
    target: '≤ 16 KiB',
    now: marginal == null ? 'n/a' : kib(marginal),
    reference: beside(result, (figures) => figures.memory?.marginalKbPerStream, kib).join(', '),
    met: marginal == null ? null : marginal <= 16,
  })
  const reuse = proxy?.reuse?.reuse
  rows.push({ figure: `upstream connection reuse (c=${proxy?.reuse?.concurrency ?? '?'})`, target: '≥ 0.999', now: reuse == null ? 'n/a' : reuse.toFixed(4), reference: '', met: reuse == null ? null : reuse >= 0.999 })
  return rows
}
