import type { EmulatorKind } from './bench-options.js'
import { type BenchResult, DIRECT, PROXY, type StallFigures, type TargetFigures } from './bench-result.js'
import { median, round } from './round-statistics.js'

/**
 * The regression gate. Every gated figure is relative to something measured in
 * the same run (direct, or the emulator's own CPU), so a baseline written on one
 * machine stays meaningful on another of the same kind, and drift during a run
 * cancels out.
 */

export type Better = 'higher' | 'lower'

/** Allowed slack: `max(absolute, relative × |baseline|)` in the worse direction. */
export interface Tolerance {
  relative?: number
  absolute?: number
}

export interface GateFigure {
  key: string
  label: string
  value: number | null
  better: Better
  /**
   * The figure is relative to a reference proxy that a run may leave out (`--no-references`):
   * null then means "not measured in this run" (SKIPPED), never a regression (MISSING).
   */
  optional?: boolean
}

export interface BaselineFigure {
  label: string
  value: number
  better: Better
  tolerance: Tolerance
}

export interface Baseline {
  tool: '@apt/bench'
  version: 1
  createdAt: string
  /** How the values were obtained (runs, machine). */
  source: string
  /** The upstream the runs used; the figures only compare with runs against the same kind. Absent: `full` (older baselines). */
  emulator?: EmulatorKind
  figures: Record<string, BaselineFigure>
}

export type GateStatus = 'OK' | 'REGRESSED' | 'MISSING' | 'SKIPPED'

export interface GateRow {
  key: string
  label: string
  baseline: number | null
  now: number | null
  /** Worst acceptable value. */
  limit: number | null
  tolerance: string
  status: GateStatus
}

export interface GateReport {
  /** `baseline`: figures against the committed baseline; `sanity`: quick-mode checks of the tool itself. */
  mode: 'baseline' | 'sanity'
  target: string
  rows: GateRow[]
  regressed: boolean
}

/** Default slack per figure kind, chosen from the spread of repeated full runs on a 2-core VM (see README). */
export const DEFAULT_TOLERANCES: Readonly<Record<string, Tolerance>> = Object.freeze({
  throughput_ratio: { relative: 0.35 },
  throughput_vs_reference: { relative: 0.3 },
  added_latency_p50_per_crossing: { relative: 0.5, absolute: 0.5 },
  added_latency_p99_per_crossing: { relative: 2, absolute: 1 },
  cpu_ratio_to_upstream: { relative: 0.4 },
  upstream_reuse: { absolute: 0.01 },
  paced_streams_ratio: { relative: 0.75 },
  first_event_p50_ratio: { relative: 1.5, absolute: 0.5 },
  memory_kb_per_stream: { relative: 0.5, absolute: 16 },
  memory_marginal_kb_per_stream: { relative: 0.5, absolute: 8 },
  error_rate: { absolute: 0.001 },
})

/** The reference proxies whose throughput the targets compare apt with (≥ 1.5× and ≥ 2.5×). */
export const THROUGHPUT_REFERENCES = ['undici-minimal', 'fastify-http-proxy'] as const

/** The tolerance kind of a figure key (`throughput_ratio_c128` → `throughput_ratio`, `throughput_vs_nginx_c128` → `throughput_vs_reference`). */
export function figureKind(key: string): string {
  const kind = key.replace(/_c\d+$/, '')
  return kind.startsWith('throughput_vs_') ? 'throughput_vs_reference' : kind
}

function finite(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

function errorRate(figures: TargetFigures | undefined): number | null {
  if (figures === undefined) return null
  let errors = 0
  let requests = 0
  if (figures.latency !== undefined) {
    errors += figures.latency.errors
    requests += figures.latency.requests
  }
  for (const level of figures.throughput ?? []) {
    errors += level.errors
    requests += level.requests
  }
  if (figures.ttfe !== undefined) {
    errors += figures.ttfe.errors
    requests += figures.ttfe.completed + figures.ttfe.errors
  }
  return requests === 0 ? null : errors / requests
}

/**
 * Paced streams held ÷ the load side's own level (direct), capped at 1: holding more than the
 * load side itself is noise of the load side, not a gain. When the load side held no level (a
 * stall on direct itself, as in run 44), a proxy that held one counts as 1, as any level over
 * zero would; when neither held one the run says nothing about the proxy, and the figure is
 * SKIPPED rather than MISSING.
 */
function pacedStreamsFigure (own: StallFigures | undefined, direct: StallFigures | undefined): GateFigure {
  const figure: GateFigure = { key: 'paced_streams_ratio', label: 'paced streams held ÷ direct\'s (max 1)', value: null, better: 'higher' }
  if (own === undefined || direct === undefined) return figure
  if (direct.maxStreamsHeld === 0) {
    if (own.maxStreamsHeld > 0) figure.value = 1
    else figure.optional = true
    return figure
  }
  figure.value = own.ratioToDirect == null ? null : Math.min(1, own.ratioToDirect)
  return figure
}

/** The gated figures of one target of a run (the apt proxy by default). */
export function gateFigures(result: BenchResult, target = PROXY): GateFigure[] {
  const own = result.figures[target]
  const direct = result.figures[DIRECT]
  const top = own?.throughput?.at(-1)
  const level = top?.concurrency ?? result.settings.concurrencyLevels.at(-1) ?? 0
  const added50 = own?.latency?.addedP50Us
  const added99 = own?.latency?.addedP99Us
  // Not direct's p50: what a proxy adds at c=1 is mostly two crossings between CPUs, and what one
  // costs differs between machines far more than direct's own round trip does (cross-core.ts).
  const crossing = result.crossCore?.p50Us
  const firstEvent = own?.ttfe?.firstEventP50Ms
  const directFirstEvent = direct?.ttfe?.firstEventP50Ms
  return [
    { key: `throughput_ratio_c${level}`, label: `throughput ÷ direct, c=${level}`, value: finite(top?.ratioToDirect), better: 'higher' },
    {
      key: 'added_latency_p50_per_crossing',
      label: 'added latency p50 ÷ cross-core round trip p50 (c=1)',
      value: added50 == null || crossing == null || crossing === 0 ? null : round(added50 / crossing, 4),
      better: 'lower',
      // Not measured when the run is not pinned (or with --target): SKIPPED then.
      optional: crossing == null,
    },
    {
      // Scaled by the round trip's p50, not its p99: a tail of a few samples is too noisy to divide by.
      key: 'added_latency_p99_per_crossing',
      label: 'added latency p99 ÷ cross-core round trip p50 (c=1)',
      value: added99 == null || crossing == null || crossing === 0 ? null : round(added99 / crossing, 4),
      better: 'lower',
      optional: crossing == null,
    },
    { key: 'cpu_ratio_to_upstream', label: `CPU per request ÷ emulator's, c=${own?.cpu?.concurrency ?? level}`, value: finite(own?.cpu?.ratioToUpstream), better: 'lower' },
    { key: `upstream_reuse_c${own?.reuse?.concurrency ?? level}`, label: `upstream connection reuse, c=${own?.reuse?.concurrency ?? level}`, value: finite(own?.reuse?.reuse), better: 'higher' },
    pacedStreamsFigure(own?.stall, direct?.stall),
    {
      key: 'first_event_p50_ratio',
      label: `time to first event p50 ÷ direct (${own?.ttfe?.streams ?? result.settings.ttfeStreams} streams)`,
      value: firstEvent == null || directFirstEvent == null || directFirstEvent === 0 ? null : round(firstEvent / directFirstEvent, 4),
      better: 'lower',
    },
    { key: 'memory_kb_per_stream', label: `RSS per open stream, KiB (${own?.memory?.streams ?? result.settings.memoryStreams} streams)`, value: finite(own?.memory?.kbPerStream), better: 'lower' },
    { key: 'memory_marginal_kb_per_stream', label: `RSS per further stream, loaded, KiB (+${own?.memory?.streams ?? result.settings.memoryStreams})`, value: finite(own?.memory?.marginalKbPerStream), better: 'lower' },
    { key: 'error_rate', label: 'error rate (all requests)', value: finite(errorRate(own)), better: 'lower' },
    // The throughput targets of the performance issue, as ratios measured in the same run.
    ...THROUGHPUT_REFERENCES.map((name): GateFigure => {
      const other = result.figures[name]?.throughput?.find((entry) => entry.concurrency === level)
      const value = top === undefined || other === undefined || other.requestsPerSecond === 0 ? null : round(top.requestsPerSecond / other.requestsPerSecond, 4)
      return { key: `throughput_vs_${name}_c${level}`, label: `throughput ÷ ${name}'s, c=${level}`, value, better: 'higher', optional: true }
    }),
  ]
}

function slack(value: number, tolerance: Tolerance): number {
  return Math.max(tolerance.absolute ?? 0, (tolerance.relative ?? 0) * Math.abs(value))
}

export function describeTolerance(tolerance: Tolerance): string {
  const parts: string[] = []
  if (tolerance.relative !== undefined) parts.push(`${round(tolerance.relative * 100, 1)}%`)
  if (tolerance.absolute !== undefined) parts.push(`${tolerance.absolute}`)
  return parts.length === 2 ? `max(${parts.join(', ')})` : (parts[0] ?? '0')
}

/** Worst acceptable value of a baseline figure. */
export function gateLimit(figure: BaselineFigure): number {
  const room = slack(figure.value, figure.tolerance)
  return figure.better === 'higher' ? figure.value - room : figure.value + room
}

/**
 * Builds a baseline from one or more runs (the median of each figure), with
 * `tolerances` by figure kind (default `DEFAULT_TOLERANCES`).
 */
export function createBaseline(results: BenchResult | readonly BenchResult[], options: { target?: string, tolerances?: Readonly<Record<string, Tolerance>>, source?: string } = {}): Baseline {
  const runs = Array.isArray(results) ? (results as readonly BenchResult[]) : [results as BenchResult]
  const emulator = runs[0]?.settings.emulator ?? 'full'
  if (runs.some((result) => (result.settings.emulator ?? 'full') !== emulator)) throw new TypeError('a baseline needs runs against the same kind of upstream (--emulator)')
  const tolerances = options.tolerances ?? DEFAULT_TOLERANCES
  const byKey = new Map<string, { figure: GateFigure, values: (number | null)[] }>()
  for (const result of runs) {
    for (const figure of gateFigures(result, options.target)) {
      const entry = byKey.get(figure.key) ?? { figure, values: [] }
      entry.values.push(figure.value)
      byKey.set(figure.key, entry)
    }
  }
  const figures: Record<string, BaselineFigure> = {}
  for (const [key, { figure, values }] of byKey) {
    const value = median(values)
    if (value === null) continue
    const tolerance = tolerances[figureKind(key)]
    if (tolerance === undefined) throw new TypeError(`no tolerance for figure kind '${figureKind(key)}'`)
    figures[key] = { label: figure.label, value: round(value, 4), better: figure.better, tolerance }
  }
  return {
    tool: '@apt/bench',
    version: 1,
    createdAt: new Date().toISOString(),
    source: options.source ?? `${runs.length} run(s), ${runs[0]?.machine.cpus ?? '?'} CPUs, ${runs[0]?.machine.cpuModel ?? '?'}, Node ${runs[0]?.machine.nodeVersion ?? '?'}`,
    emulator,
    figures,
  }
}

/**
 * Compares `figures` (from `gateFigures`) with a baseline. A figure worse than
 * its limit is REGRESSED; one the baseline has but the run lacks is MISSING (a
 * regression when the run was a complete `all` run, else SKIPPED).
 */
export function compareWithBaseline(baseline: Baseline, figures: readonly GateFigure[], options: { complete?: boolean, target?: string } = {}): GateReport {
  const complete = options.complete ?? true
  const now = new Map(figures.map((figure) => [figure.key, figure]))
  const rows: GateRow[] = []
  for (const [key, figure] of Object.entries(baseline.figures)) {
    const measured = now.get(key)?.value ?? null
    const limit = gateLimit(figure)
    let status: GateStatus
    if (measured === null) status = complete && now.get(key)?.optional !== true ? 'MISSING' : 'SKIPPED'
    else if (figure.better === 'higher' ? measured < limit : measured > limit) status = 'REGRESSED'
    else status = 'OK'
    rows.push({ key, label: figure.label, baseline: figure.value, now: measured, limit: round(limit, 4), tolerance: describeTolerance(figure.tolerance), status })
  }
  for (const figure of figures) {
    if (baseline.figures[figure.key] === undefined) {
      rows.push({ key: figure.key, label: figure.label, baseline: null, now: figure.value, limit: null, tolerance: '-', status: 'SKIPPED' })
    }
  }
  return { mode: 'baseline', target: options.target ?? PROXY, rows, regressed: rows.some((row) => row.status === 'REGRESSED' || row.status === 'MISSING') }
}

/**
 * Quick-mode checks: the tool works end to end, not how fast the machine is.
 * Every gated figure was measured and is finite, nothing failed, reuse is sane.
 */
export function sanityCheck(result: BenchResult, target = PROXY): GateReport {
  const own = result.figures[target]
  const direct = result.figures[DIRECT]
  const rows: GateRow[] = []
  const testedAll = result.settings.testType === 'all'
  // What each figure needs to exist. Whether a stall level was held depends on the machine, not the tool.
  const produced: [string, boolean][] = [
    ['latency', own?.latency?.addedP50Us != null && Number.isFinite(own.latency.p99Ms)],
    ['throughput', own?.throughput?.at(-1)?.ratioToDirect != null],
    ['cpu', own?.cpu?.ratioToUpstream != null],
    ['reuse', own?.reuse != null],
    ['first event', own?.ttfe?.addedFirstEventP50Us != null],
    ['paced streams', (own?.stall?.levels.length ?? 0) > 0 && (direct?.stall?.levels.length ?? 0) > 0],
    ['memory', own?.memory != null],
    ['memory per further stream', own?.memory?.marginalKbPerStream != null],
  ]
  const missing = produced.filter(([, present]) => !present).map(([name]) => name)
  rows.push({
    key: 'figures_present',
    label: !testedAll ? 'every figure measured (not an "all" run)' : missing.length > 0 ? `every figure measured (missing: ${missing.join(', ')})` : 'every figure measured',
    baseline: produced.length,
    now: produced.length - missing.length,
    limit: produced.length,
    tolerance: '0',
    status: !testedAll ? 'SKIPPED' : missing.length === 0 ? 'OK' : 'REGRESSED',
  })
  let errors = 0
  for (const figures of [own, direct]) {
    errors += figures?.latency?.errors ?? 0
    for (const level of figures?.throughput ?? []) errors += level.errors
    errors += figures?.ttfe?.errors ?? 0
    for (const level of figures?.stall?.levels ?? []) errors += level.failed
  }
  rows.push({ key: 'errors', label: `failed requests and streams (${target}, direct)`, baseline: 0, now: errors, limit: 0, tolerance: '0', status: errors === 0 ? 'OK' : 'REGRESSED' })
  const reuse = own?.reuse?.reuse ?? null
  rows.push({
    key: 'upstream_reuse',
    label: result.selfContained ? 'upstream connection reuse is sane' : 'upstream connection reuse (needs the emulator)',
    baseline: 0.9,
    now: reuse,
    limit: 0.9,
    tolerance: '>= 0.9',
    status: reuse === null ? (own?.throughput === undefined || !result.selfContained ? 'SKIPPED' : 'MISSING') : reuse >= 0.9 ? 'OK' : 'REGRESSED',
  })
  return { mode: 'sanity', target, rows, regressed: rows.some((row) => row.status === 'REGRESSED' || row.status === 'MISSING') }
}

/** Parses and validates a baseline file's text. */
export function parseBaseline(text: string, path: string): Baseline {
  const value = JSON.parse(text) as Partial<Baseline>
  if (value.tool !== '@apt/bench' || value.version !== 1 || typeof value.figures !== 'object' || value.figures === null) {
    throw new TypeError(`${path} is not an @apt/bench baseline (version 1)`)
  }
  if (value.emulator !== undefined && value.emulator !== 'fast' && value.emulator !== 'full') throw new TypeError(`${path}: emulator must be 'fast' or 'full'`)
  for (const [key, figure] of Object.entries(value.figures)) {
    if (typeof figure.value !== 'number' || (figure.better !== 'higher' && figure.better !== 'lower') || typeof figure.tolerance !== 'object') {
      throw new TypeError(`${path}: figure '${key}' needs a numeric value, better (higher|lower) and a tolerance`)
    }
  }
  return value as Baseline
}
