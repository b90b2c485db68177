import type { LatencySummary } from './distribution.js'
import { DISTRIBUTION_KINDS, type DistributionKind, type WindowCounters } from './sliding-window.js'

const SUMMARY_FIELDS = ['p50', 'p90', 'p95', 'p99', 'p999', 'mean', 'max'] as const
type SummaryField = (typeof SUMMARY_FIELDS)[number]

const SCALAR_METRICS = [
  'count',
  'errors',
  'errorRate',
  'requestsPerSecond',
  'bytesPerSecond',
  'activeStreams',
  'peakActiveStreams',
  'memory.rssBytes',
  'memory.heapUsedBytes',
  'memory.rssGrowthBytes',
  'memory.heapUsedGrowthBytes',
  'eventLoopDelay.p99Ms',
  'eventLoopDelay.maxMs',
] as const

/**
 * What a rule watches: a field of the rule's window (`WindowStats`), written as a path.
 * Distribution metrics are `<durationMs|ttfbMs|ttftMs|overheadUs>.<p50|p90|p95|p99|p999|mean|max>`.
 */
export type AlertMetric = `${DistributionKind}.${SummaryField}` | (typeof SCALAR_METRICS)[number]

export const ALERT_METRICS: readonly AlertMetric[] = [
  ...DISTRIBUTION_KINDS.flatMap((kind) => SUMMARY_FIELDS.map((field): AlertMetric => `${kind}.${field}`)),
  ...SCALAR_METRICS,
]

/**
 * One alert rule, as plain data. With comparator `'>'` the rule breaches when the value is
 * above `threshold` and, once firing, resolves only when the value drops below
 * `clearThreshold` (≤ threshold); `'<'` mirrors this (clearThreshold ≥ threshold).
 */
export interface AlertRule {
  /** Unique, stable identifier (e.g. `p95-latency`). */
  id: string
  description?: string
  metric: AlertMetric
  comparator: '>' | '<'
  /** Fire threshold, in the metric's unit (ms, µs, ratio 0..1, bytes, requests/s). */
  threshold: number
  /** Hysteresis: a firing alert resolves only once the value is past this. */
  clearThreshold: number
  /** Which window the metric is read from; must be one of the monitor's `windowsMs`. */
  windowMs: number
  /** How long the breach must hold, across evaluations, before the rule fires. 0 fires at once. */
  holdMs: number
  /** Fewer requests than this in the window means "no data" (the rule neither fires nor stays firing). */
  minCount: number
  /** Disabled rules are ignored (e.g. the low-traffic rule when traffic is not expected). */
  enabled: boolean
}

const MIB = 1024 * 1024
/** Relative width of the hysteresis band used by the defaults and by `parseAlertRules`. */
const HYSTERESIS = 0.1
const DEFAULT_HOLD_MS = 30_000

function clearFor (comparator: '>' | '<', threshold: number): number {
  return comparator === '>' ? threshold * (1 - HYSTERESIS) : threshold * (1 + HYSTERESIS)
}

/** The default rules (a fresh, mutable copy each call). */
export function defaultAlertRules (): AlertRule[] {
  return [
    {
      id: 'p95-latency',
      description: 'p95 request duration over the last minute is above 500 ms',
      metric: 'durationMs.p95',
      comparator: '>',
      threshold: 500,
      clearThreshold: 450,
      windowMs: 60_000,
      holdMs: DEFAULT_HOLD_MS,
      minCount: 10,
      enabled: true,
    },
    {
      id: 'p99-latency',
      description: 'p99 request duration over the last minute is above 1000 ms',
      metric: 'durationMs.p99',
      comparator: '>',
      threshold: 1000,
      clearThreshold: 900,
      windowMs: 60_000,
      holdMs: DEFAULT_HOLD_MS,
      minCount: 10,
      enabled: true,
    },
    {
      id: 'error-rate',
      description: 'more than 5 % of requests over the last minute failed',
      metric: 'errorRate',
      comparator: '>',
      threshold: 0.05,
      clearThreshold: 0.045,
      windowMs: 60_000,
      holdMs: DEFAULT_HOLD_MS,
      minCount: 10,
      enabled: true,
    },
    {
      id: 'memory-growth',
      description: 'resident memory grew by more than 50 MiB over the last 5 minutes',
      metric: 'memory.rssGrowthBytes',
      comparator: '>',
      threshold: 50 * MIB,
      clearThreshold: 45 * MIB,
      windowMs: 300_000,
      holdMs: DEFAULT_HOLD_MS,
      minCount: 0,
      enabled: true,
    },
    {
      id: 'min-rps',
      description: 'fewer than 1 request per second over the last minute while traffic is expected',
      metric: 'requestsPerSecond',
      comparator: '<',
      threshold: 1,
      clearThreshold: 1.1,
      windowMs: 60_000,
      holdMs: DEFAULT_HOLD_MS,
      minCount: 0,
      enabled: false,
    },
  ]
}

export interface ParsedAlertRules {
  rules: AlertRule[]
  /** Every problem found, one sentence each; empty when the input is valid. */
  errors: string[]
}

type Reader = (name: string, unit: string, max?: number) => number | undefined

function readerFor (env: Readonly<Record<string, string | undefined>>, errors: string[]): Reader {
  return (name, unit, max) => {
    const raw = env[name]
    if (raw === undefined || raw.trim() === '') return undefined
    const value = Number(raw.trim())
    if (!Number.isFinite(value) || value < 0 || (max !== undefined && value > max)) {
      errors.push(`${name} must be ${unit}, got '${raw}'`)
      return undefined
    }
    return value
  }
}

function readErrorRate (env: Readonly<Record<string, string | undefined>>, errors: string[]): number | undefined {
  const raw = env.ALERT_ERROR_RATE
  if (raw === undefined || raw.trim() === '') return undefined
  const text = raw.trim()
  const percent = text.endsWith('%')
  const value = Number(percent ? text.slice(0, -1).trim() : text)
  const ratio = percent ? value / 100 : value
  if (!Number.isFinite(value) || !(ratio >= 0 && ratio <= 1) || (percent && text.length === 1)) {
    errors.push(`ALERT_ERROR_RATE must be a ratio from 0 to 1 (e.g. 0.05) or a percentage (e.g. 5%), 0 disables the rule, got '${raw}'`)
    return undefined
  }
  return ratio
}

function withThreshold (rule: AlertRule, threshold: number): AlertRule {
  if (threshold === 0) return { ...rule, enabled: false }
  return { ...rule, threshold, clearThreshold: clearFor(rule.comparator, threshold), enabled: true }
}

/**
 * Turns environment-style strings into alert rules, starting from `base` (the defaults
 * unless given). Recognised names (unset or empty means "keep the default"):
 *
 * - `ALERT_P95_LATENCY_MS`, `ALERT_P99_LATENCY_MS`: milliseconds, 0 disables the rule.
 * - `ALERT_ERROR_RATE`: ratio 0..1 or percentage (`5%`), 0 disables the rule.
 * - `ALERT_MEMORY_GROWTH_MB`: MiB of RSS growth over the rule's window, 0 disables the rule.
 * - `ALERT_MIN_RPS`: requests/s; a positive value enables the low-traffic rule, 0 disables it.
 * - `ALERT_HOLD_MS`: hold time applied to every rule.
 *
 * Never throws for bad input: every problem is reported in `errors`, and the valid
 * settings are still applied to `rules`. Changed thresholds get a 10 % hysteresis band.
 */
export function parseAlertRules (
  env: Readonly<Record<string, string | undefined>>,
  base: readonly AlertRule[] = defaultAlertRules(),
): ParsedAlertRules {
  const errors: string[] = []
  const read = readerFor(env, errors)
  const overrides = new Map<string, number>()
  const set = (id: string, value: number | undefined): void => {
    if (value !== undefined) overrides.set(id, value)
  }
  set('p95-latency', read('ALERT_P95_LATENCY_MS', 'a non-negative number of milliseconds (0 disables the rule)'))
  set('p99-latency', read('ALERT_P99_LATENCY_MS', 'a non-negative number of milliseconds (0 disables the rule)'))
  set('error-rate', readErrorRate(env, errors))
  const growthMb = read('ALERT_MEMORY_GROWTH_MB', 'a non-negative number of MiB (0 disables the rule)')
  set('memory-growth', growthMb === undefined ? undefined : growthMb * MIB)
  set('min-rps', read('ALERT_MIN_RPS', 'a non-negative number of requests per second (0 disables the rule)'))
  const holdMs = read('ALERT_HOLD_MS', 'a non-negative number of milliseconds')

  for (const id of overrides.keys()) {
    if (!base.some((rule) => rule.id === id)) errors.push(`cannot apply the setting for alert rule '${id}': the base rules have no rule with that id`)
  }
  const rules = base.map((rule) => {
    const threshold = overrides.get(rule.id)
    let next: AlertRule = threshold === undefined ? { ...rule } : withThreshold(rule, threshold)
    if (holdMs !== undefined) next = { ...next, holdMs }
    return next
  })
  return { rules, errors }
}

/** Every problem with `rules` given the monitor's windows, one sentence each. */
export function validateAlertRules (rules: readonly AlertRule[], windowsMs: readonly number[]): string[] {
  const problems: string[] = []
  const seen = new Set<string>()
  rules.forEach((rule, index) => {
    const name = typeof rule.id === 'string' && rule.id !== '' ? `alert rule '${rule.id}'` : `alert rule #${index}`
    if (typeof rule.id !== 'string' || rule.id === '') problems.push(`${name} needs a non-empty string id`)
    else if (seen.has(rule.id)) problems.push(`${name} is defined more than once`)
    else seen.add(rule.id)
    if (!rule.enabled) return
    if (!ALERT_METRICS.includes(rule.metric)) problems.push(`${name} has unknown metric '${String(rule.metric)}'`)
    if (rule.comparator !== '>' && rule.comparator !== '<') problems.push(`${name} comparator must be '>' or '<', got '${String(rule.comparator)}'`)
    if (!Number.isFinite(rule.threshold)) problems.push(`${name} threshold must be a finite number, got ${String(rule.threshold)}`)
    if (!Number.isFinite(rule.clearThreshold)) problems.push(`${name} clearThreshold must be a finite number, got ${String(rule.clearThreshold)}`)
    else if (rule.comparator === '>' && rule.clearThreshold > rule.threshold) {
      problems.push(`${name} clearThreshold (${rule.clearThreshold}) must not be above threshold (${rule.threshold}) for comparator '>'`)
    } else if (rule.comparator === '<' && rule.clearThreshold < rule.threshold) {
      problems.push(`${name} clearThreshold (${rule.clearThreshold}) must not be below threshold (${rule.threshold}) for comparator '<'`)
    }
    if (!windowsMs.includes(rule.windowMs)) {
      problems.push(`${name} uses windowMs ${String(rule.windowMs)}, which is not one of windowsMs [${windowsMs.join(', ')}]`)
    }
    if (!(Number.isFinite(rule.holdMs) && rule.holdMs >= 0)) problems.push(`${name} holdMs must be a non-negative number, got ${String(rule.holdMs)}`)
    if (!(Number.isInteger(rule.minCount) && rule.minCount >= 0)) problems.push(`${name} minCount must be a non-negative integer, got ${String(rule.minCount)}`)
  })
  return problems
}

/** Reads `metric` from window figures; null means "no data". */
export function metricValue (
  metric: AlertMetric,
  window: WindowCounters,
  summaryOf: (kind: DistributionKind) => LatencySummary,
): number | null {
  switch (metric) {
    case 'count': return window.count
    case 'errors': return window.errors
    case 'errorRate': return window.errorRate
    case 'requestsPerSecond': return window.requestsPerSecond
    case 'bytesPerSecond': return window.bytesPerSecond
    case 'activeStreams': return window.activeStreams
    case 'peakActiveStreams': return window.peakActiveStreams
    case 'memory.rssBytes': return window.memory?.rssBytes ?? null
    case 'memory.heapUsedBytes': return window.memory?.heapUsedBytes ?? null
    case 'memory.rssGrowthBytes': return window.memory?.rssGrowthBytes ?? null
    case 'memory.heapUsedGrowthBytes': return window.memory?.heapUsedGrowthBytes ?? null
    case 'eventLoopDelay.p99Ms': return window.eventLoopDelay?.p99Ms ?? null
    case 'eventLoopDelay.maxMs': return window.eventLoopDelay?.maxMs ?? null
    default: {
      const dot = metric.indexOf('.')
      const kind = metric.slice(0, dot) as DistributionKind
      const field = metric.slice(dot + 1) as SummaryField
      return summaryOf(kind)[field]
    }
  }
}
