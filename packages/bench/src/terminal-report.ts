import { type BenchResult, DIRECT, PROXY, type TargetFigures, type ThroughputLevel } from './bench-result.js'
import { describeCpuIdle } from './cpu-idle.js'
import type { GateReport } from './gate.js'
import { evaluatePerformanceTargets } from './performance-targets.js'

const RULE = '='.repeat(78)
const LABEL_WIDTH = 34

function heading(title: string, subtitle?: string): string[] {
  return ['', RULE, subtitle === undefined ? title : `${title}  (${subtitle})`, RULE]
}

function ms(value: number | null | undefined): string {
  if (value == null || !Number.isFinite(value)) return '-'
  return value < 10 ? value.toFixed(3) : value < 1000 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US')
}

function int(value: number | null | undefined): string {
  return value == null || !Number.isFinite(value) ? '-' : Math.round(value).toLocaleString('en-US')
}

function signed(value: number | null | undefined): string {
  if (value == null || !Number.isFinite(value)) return '-'
  return `${value > 0 ? '+' : ''}${Math.round(value).toLocaleString('en-US')}`
}

function ratio(value: number | null | undefined, digits = 2): string {
  return value == null || !Number.isFinite(value) ? '-' : value.toFixed(digits)
}

function pct(value: number | null | undefined, digits = 2): string {
  return value == null || !Number.isFinite(value) ? '-' : `${(value * 100).toFixed(digits)}%`
}

function duration(msValue: number): string {
  const seconds = Math.round(msValue / 1000)
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`
}

/** Rows of `label: value per target` with one column per target, widths fitted to the cells. */
class Table {
  readonly #columns: string[]
  readonly #rows: [string, string[]][] = []

  constructor(columns: string[]) {
    this.#columns = columns
  }

  row(label: string, cell: (name: string) => string): void {
    this.#rows.push([label, this.#columns.map(cell)])
  }

  lines(header = true): string[] {
    const widths = this.#columns.map((column, index) => Math.max(10, column.length, ...this.#rows.map(([, cells]) => (cells[index] ?? '').length)) + 2)
    const line = (label: string, cells: string[]): string => label.padEnd(LABEL_WIDTH) + cells.map((cell, index) => cell.padStart(widths[index] ?? 12)).join('')
    const out = header ? [line('', this.#columns), line('', this.#columns.map((column) => '-'.repeat(column.length)))] : []
    for (const [label, cells] of this.#rows) out.push(line(label, cells))
    return out
  }
}

function targetNames(result: BenchResult): string[] {
  return result.targets.filter((target) => result.figures[target.name] !== undefined).map((target) => target.name)
}

function figuresOf(result: BenchResult, name: string): TargetFigures {
  return result.figures[name] ?? {}
}

function latencySection(result: BenchResult, names: string[]): string[] {
  const present = names.filter((name) => figuresOf(result, name).latency !== undefined)
  if (present.length === 0) return []
  const s = result.settings
  const lines = heading('LATENCY BENCHMARK RESULTS', `concurrency 1, zero-delay upstream, median of ${s.latencyRounds} interleaved rounds`)
  const table = new Table(present)
  const get = (name: string) => figuresOf(result, name).latency
  table.row('Total requests', (name) => int(get(name)?.requests))
  table.row('Errors', (name) => int(get(name)?.errors))
  table.row('Error rate', (name) => {
    const figures = get(name)
    return figures === undefined || figures.requests === 0 ? '-' : pct(figures.errors / figures.requests)
  })
  table.row('Average (ms)', (name) => ms(get(name)?.meanMs))
  table.row('P50 (ms)', (name) => ms(get(name)?.p50Ms))
  table.row('P95 (ms)', (name) => ms(get(name)?.p95Ms))
  table.row('P99 (ms)', (name) => ms(get(name)?.p99Ms))
  table.row('Requests/sec (1 ÷ average)', (name) => {
    const mean = get(name)?.meanMs
    return mean == null || mean === 0 ? '-' : int(1000 / mean)
  })
  table.row('Added latency P50 (µs)', (name) => (name === DIRECT ? '-' : signed(get(name)?.addedP50Us)))
  table.row('Added latency P99 (µs)', (name) => (name === DIRECT ? '-' : signed(get(name)?.addedP99Us)))
  const floor = result.crossCore
  const footer = floor == null
    ? []
    : ['', `Cross-core round trip (a one-byte echo, CPU ${floor.fromCpus} → ${floor.toCpus} → ${floor.fromCpus}, no proxy running): P50 ${floor.p50Us} µs, P99 ${floor.p99Us} µs.`,
        'A proxy on its own CPU makes two such trips per request (client → proxy → client, proxy → upstream → proxy) where direct',
        `stays on one CPU: ${2 * floor.p50Us} µs at P50 is what this machine charges any proxy here for them (echo work included).`,
        ...(result.machine.cpuIdle?.haltPollNs === 0 ? ['Idle CPUs here halt without polling first: each trip wakes a halted virtual CPU through the hypervisor.'] : [])]
  return [...lines, ...table.lines(), ...footer]
}

function concurrentSection(result: BenchResult, names: string[]): string[] {
  const present = names.filter((name) => figuresOf(result, name).throughput !== undefined)
  if (present.length === 0) return []
  const s = result.settings
  const lines = heading('CONCURRENT LOAD RESULTS', `closed loop, ${s.durationMs / 1000} s per target, level and round, median of ${s.rounds} rounds`)
  const levels = [...new Set(present.flatMap((name) => (figuresOf(result, name).throughput ?? []).map((level) => level.concurrency)))].sort((a, b) => a - b)
  for (const concurrency of levels) {
    lines.push('', `Concurrency ${concurrency}`)
    const table = new Table(present)
    const get = (name: string): ThroughputLevel | undefined => figuresOf(result, name).throughput?.find((level) => level.concurrency === concurrency)
    table.row('Total requests', (name) => int(get(name)?.requests))
    table.row('Error rate', (name) => pct(get(name)?.errorRate))
    table.row('Requests/sec', (name) => int(get(name)?.requestsPerSecond))
    table.row('Requests/sec ÷ direct', (name) => ratio(get(name)?.ratioToDirect, 3))
    table.row('Average (ms)', (name) => ms(get(name)?.meanMs))
    table.row('P50 (ms)', (name) => ms(get(name)?.p50Ms))
    table.row('P95 (ms)', (name) => ms(get(name)?.p95Ms))
    table.row('P99 (ms)', (name) => ms(get(name)?.p99Ms))
    table.row('CPU per request (µs)', (name) => ms(get(name)?.cpuUsPerRequest))
    table.row('Upstream connections opened', (name) => int(get(name)?.upstreamConnections))
    table.row('Upstream connection reuse', (name) => ratio(get(name)?.reuse, 4))
    table.row('Load generator CPU (% of a core)', (name) => int(get(name)?.generatorCpuPercent))
    table.row('Upstream CPU (% of a core)', (name) => int(get(name)?.upstreamCpuPercent ?? undefined))
    lines.push(...table.lines())
  }
  lines.push('')
  const table = new Table(present)
  table.row(`Highest req/s with P99 ≤ ${s.p99BoundMs} ms`, (name) => {
    const best = figuresOf(result, name).rateWithinP99Bound
    return best == null ? 'none' : `${int(best.requestsPerSecond)} @${best.concurrency}`
  })
  table.row('CPU per request ÷ emulator\'s', (name) => (name === DIRECT ? '-' : ratio(figuresOf(result, name).cpu?.ratioToUpstream)))
  lines.push(...table.lines(false))
  return lines
}

function streamingSection(result: BenchResult, names: string[]): string[] {
  const present = names.filter((name) => figuresOf(result, name).ttfe !== undefined || figuresOf(result, name).stall !== undefined)
  if (present.length === 0) return []
  const s = result.settings
  const lines = heading('STREAMING BENCHMARK RESULTS', `SSE, events ${s.streamPaceMs} ms apart`)
  const ttfe = (name: string) => figuresOf(result, name).ttfe
  if (present.some((name) => ttfe(name) !== undefined)) {
    lines.push('', `Time to first event: ${s.ttfeStreams} concurrent streams of ${s.ttfeEvents} events, median of ${s.ttfeRounds} round(s)`)
    const table = new Table(present)
    table.row('Streams completed', (name) => int(ttfe(name)?.completed))
    table.row('Errors', (name) => int(ttfe(name)?.errors))
    table.row('First event P50 (ms)', (name) => ms(ttfe(name)?.firstEventP50Ms))
    table.row('First event P99 (ms)', (name) => ms(ttfe(name)?.firstEventP99Ms))
    table.row('Added first event P50 (µs)', (name) => (name === DIRECT ? '-' : signed(ttfe(name)?.addedFirstEventP50Us)))
    table.row('Added first event P99 (µs)', (name) => (name === DIRECT ? '-' : signed(ttfe(name)?.addedFirstEventP99Us)))
    table.row('Gap between events P50 (ms)', (name) => ms(ttfe(name)?.gapP50Ms))
    table.row('Gap between events P99 (ms)', (name) => ms(ttfe(name)?.gapP99Ms))
    table.row('Added gap P50 (µs)', (name) => (name === DIRECT ? '-' : signed(ttfe(name)?.addedGapP50Us)))
    table.row('Added gap P99 (µs)', (name) => (name === DIRECT ? '-' : signed(ttfe(name)?.addedGapP99Us)))
    table.row('Load generator CPU (% of a core)', (name) => int(ttfe(name)?.generatorCpuPercent))
    lines.push(...table.lines())
  }
  const stall = (name: string) => figuresOf(result, name).stall
  if (present.some((name) => stall(name) !== undefined)) {
    lines.push('', `Paced streams: ${s.streamEvents} events ${s.streamPaceMs} ms apart, stall = a gap or first-event wait > ${s.streamPaceMs + s.stallMarginMs} ms`)
    const table = new Table(present)
    const levels = [...new Set(present.flatMap((name) => (stall(name)?.levels ?? []).map((level) => level.streams)))].sort((a, b) => a - b)
    for (const streams of levels) {
      table.row(`${streams} streams`, (name) => {
        const level = stall(name)?.levels.find((entry) => entry.streams === streams)
        if (level === undefined) return '-'
        if (level.held) return 'held'
        return level.failed > 0 ? `${level.failed} failed` : `${level.stalled} stalled`
      })
    }
    for (const streams of levels) {
      table.row(`  worst gap at ${streams} (ms)`, (name) => ms(stall(name)?.levels.find((entry) => entry.streams === streams)?.maxGapMs))
    }
    for (const streams of levels) {
      table.row(`  CPU per event at ${streams} (µs)`, (name) => ms(stall(name)?.levels.find((entry) => entry.streams === streams)?.cpuUsPerEvent))
    }
    table.row('Largest level held', (name) => int(stall(name)?.maxStreamsHeld))
    table.row('Held ÷ load side (direct)', (name) => (name === DIRECT ? '-' : ratio(stall(name)?.ratioToDirect)))
    const memory = (name: string) => figuresOf(result, name).memory
    table.row('Idle RSS (MiB)', (name) => ms(memory(name) == null ? null : (memory(name)?.idleRssKb ?? 0) / 1024))
    table.row('Peak RSS with streams open (MiB)', (name) => ms(memory(name) == null ? null : (memory(name)?.peakRssKb ?? 0) / 1024))
    table.row('Memory per stream (KiB)', (name) => {
      const figures = memory(name)
      return figures == null ? '-' : `${figures.kbPerStream.toFixed(1)} @${figures.streams}`
    })
    table.row('Memory per further stream (KiB)', (name) => {
      const figures = memory(name)
      return figures?.marginalKbPerStream == null ? '-' : `${figures.marginalKbPerStream.toFixed(1)} @${figures.streams * 2}`
    })
    lines.push(...table.lines())
    const loadSide = stall(DIRECT)?.maxStreamsHeld
    if (loadSide !== undefined) {
      lines.push('', `The load side itself (generator + emulator, measured as "direct") held ${loadSide} paced streams: a proxy that holds as many is not the limit.`)
    }
  }
  return lines
}

function summarySection(result: BenchResult, names: string[]): string[] {
  const lines = heading('SUMMARY', 'each figure against direct, measured in the same run')
  const proxies = names.filter((name) => name !== DIRECT)
  if (proxies.length === 0) return []
  const table = new Table(proxies)
  const f = (name: string) => figuresOf(result, name)
  table.row('CPU per request (µs)', (name) => ms(f(name).cpu?.usPerRequest))
  table.row('Added latency P50 / P99 (µs)', (name) => `${signed(f(name).latency?.addedP50Us)} / ${signed(f(name).latency?.addedP99Us)}`)
  table.row(`Throughput ÷ direct (c=${result.settings.concurrencyLevels.at(-1)})`, (name) => ratio(f(name).throughput?.at(-1)?.ratioToDirect, 3))
  table.row('Added first event P99 (µs)', (name) => signed(f(name).ttfe?.addedFirstEventP99Us))
  table.row('Paced streams held', (name) => int(f(name).stall?.maxStreamsHeld))
  const firstLevel = result.settings.streamLevels[0]
  table.row(`CPU per event (µs, ${firstLevel ?? '?'} streams)`, (name) => ms(f(name).stall?.levels.find((entry) => entry.streams === firstLevel)?.cpuUsPerEvent))
  table.row('Memory per stream (KiB)', (name) => ratio(f(name).memory?.kbPerStream, 1))
  table.row('Memory per further stream (KiB)', (name) => ratio(f(name).memory?.marginalKbPerStream, 1))
  table.row(`Upstream reuse (c=${result.settings.concurrencyLevels.at(-1)})`, (name) => ratio(f(name).reuse?.reuse, 4))
  return [...lines, ...table.lines()]
}

function targetsSection(result: BenchResult): string[] {
  if (result.figures[PROXY] === undefined) return []
  const lines = heading('PERFORMANCE TARGETS', 'of the performance issue; informational')
  for (const row of evaluatePerformanceTargets(result)) {
    const mark = row.met === null ? 'n/a ' : row.met ? 'MET ' : 'MISS'
    lines.push(`${mark}  ${row.figure.padEnd(50)} ${row.now.padStart(12)}   target ${row.target}${row.reference === '' ? '' : `; ${row.reference}`}`)
  }
  return lines
}

/** The comparison table of the gate: figure, baseline, now, tolerance, status. */
export function formatGate(report: GateReport): string {
  const title = report.mode === 'sanity' ? 'REGRESSION GATE (quick mode: checks the tool, not the machine)' : `REGRESSION GATE (${report.target} against the committed baseline)`
  const lines = heading(title)
  lines.push(`${'figure'.padEnd(50)}${'baseline'.padStart(10)}${'now'.padStart(10)}${'limit'.padStart(10)}  ${'tolerance'.padEnd(15)}status`)
  const num = (value: number | null): string => (value === null ? '-' : Number.isInteger(value) ? String(value) : value.toFixed(value >= 100 ? 1 : 4))
  for (const row of report.rows) {
    const label = row.label.length > 49 ? `${row.label.slice(0, 48)}…` : row.label
    lines.push(`${label.padEnd(50)}${num(row.baseline).padStart(10)}${num(row.now).padStart(10)}${num(row.limit).padStart(10)}  ${row.tolerance.padEnd(15)}${row.status}`)
  }
  lines.push('', report.regressed ? 'RESULT: REGRESSED' : 'RESULT: OK')
  return lines.join('\n')
}

/** The whole terminal report of a run, in the seed's style. */
export function formatReport(result: BenchResult): string {
  const names = targetNames(result)
  const machine = result.machine
  const pinning = !machine.pinning.used
    ? `not pinned (${machine.pinning.note})`
    : result.selfContained
      ? `proxy on CPU ${machine.pinning.proxyCpus}, emulator on CPU ${machine.pinning.upstreamCpus}, load generator on CPU ${machine.pinning.loadCpus ?? 'any (not pinned)'}`
      : `--target and its upstream run where you started them; --compare proxies on CPU ${machine.pinning.proxyCpus}, load generator on CPU ${machine.pinning.loadCpus ?? 'any'}`
  const lines = [
    RULE,
    `APT PROXY BENCHMARK  ${result.settings.quick ? 'quick' : 'full'} mode, test type ${result.settings.testType}${result.interrupted ? '  ** INTERRUPTED: partial results **' : ''}`,
    RULE,
    `Started:   ${result.startedAt}   Duration: ${duration(result.durationMs)}`,
    `Machine:   ${machine.cpus} CPUs (${machine.cpuModel}), ${Math.round(machine.totalMemoryMb / 1024)} GiB, ${machine.os}, Node ${machine.nodeVersion}`,
    `Pinning:   ${pinning}`,
  ]
  const idle = describeCpuIdle(machine.cpuIdle)
  if (idle !== null) lines.push(`Idle CPUs: ${idle}`)
  lines.push('Targets:')
  for (const target of result.targets) {
    const where = target.failure === null ? `${target.url}${target.pid === null ? '' : `  pid ${target.pid}`}` : `FAILED: ${target.failure.split('\n')[0]}`
    lines.push(`  ${target.name.padEnd(20)} ${target.kind.padEnd(8)} ${where}`)
  }
  lines.push(
    ...latencySection(result, names),
    ...concurrentSection(result, names),
    ...streamingSection(result, names),
    ...summarySection(result, names),
    ...targetsSection(result),
  )
  lines.push('', `Load generator: at most ${result.generatorMaxCpuPercent}% of one core in any measured window.`)
  if (result.notes.length > 0) {
    lines.push('', 'Notes:')
    for (const note of result.notes) lines.push(`  - ${note}`)
  }
  return lines.join('\n')
}
