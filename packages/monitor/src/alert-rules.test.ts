import { describe, expect, test } from 'vitest'
import { defaultAlertRules, parseAlertRules, validateAlertRules } from './alert-rules.js'

const MIB = 1024 * 1024
const byId = (rules: ReturnType<typeof defaultAlertRules>, id: string) => rules.find((rule) => rule.id === id)

describe('defaultAlertRules', () => {
  test('the documented defaults', () => {
    const rules = defaultAlertRules()
    expect(rules.map((rule) => [rule.id, rule.metric, rule.comparator, rule.threshold, rule.clearThreshold, rule.windowMs, rule.enabled])).toEqual([
      ['p95-latency', 'durationMs.p95', '>', 500, 450, 60_000, true],
      ['p99-latency', 'durationMs.p99', '>', 1000, 900, 60_000, true],
      ['error-rate', 'errorRate', '>', 0.05, 0.045, 60_000, true],
      ['memory-growth', 'memory.rssGrowthBytes', '>', 50 * MIB, 45 * MIB, 300_000, true],
      ['min-rps', 'requestsPerSecond', '<', 1, 1.1, 60_000, false],
    ])
    expect(validateAlertRules(rules, [10_000, 60_000, 300_000])).toEqual([])
  })

  test('returns a fresh copy each call', () => {
    const first = defaultAlertRules()
    ;(first[0] as { threshold: number }).threshold = 1
    expect(defaultAlertRules()[0]?.threshold).toBe(500)
  })
})

describe('parseAlertRules', () => {
  test('an empty environment gives the defaults and no errors', () => {
    expect(parseAlertRules({})).toEqual({ rules: defaultAlertRules(), errors: [] })
  })

  test('applies every recognised variable with a 10 % hysteresis band', () => {
    const { rules, errors } = parseAlertRules({
      ALERT_P95_LATENCY_MS: '800',
      ALERT_P99_LATENCY_MS: '2000',
      ALERT_ERROR_RATE: '2%',
      ALERT_MEMORY_GROWTH_MB: '100',
      ALERT_MIN_RPS: '5',
      ALERT_HOLD_MS: '10000',
      UNRELATED: 'x',
    })
    expect(errors).toEqual([])
    expect(byId(rules, 'p95-latency')).toMatchObject({ threshold: 800, clearThreshold: 720, holdMs: 10_000, enabled: true })
    expect(byId(rules, 'p99-latency')).toMatchObject({ threshold: 2000, clearThreshold: 1800 })
    expect(byId(rules, 'error-rate')?.threshold).toBeCloseTo(0.02, 10)
    expect(byId(rules, 'memory-growth')).toMatchObject({ threshold: 100 * MIB, clearThreshold: 90 * MIB })
    expect(byId(rules, 'min-rps')).toMatchObject({ threshold: 5, clearThreshold: 5.5, enabled: true })
    expect(rules.every((rule) => rule.holdMs === 10_000)).toBe(true)
  })

  test('error rate accepts a ratio; 0 disables a rule; empty strings keep the default', () => {
    const { rules, errors } = parseAlertRules({ ALERT_ERROR_RATE: '0.1', ALERT_P99_LATENCY_MS: '0', ALERT_P95_LATENCY_MS: '  ', ALERT_MIN_RPS: '0' })
    expect(errors).toEqual([])
    expect(byId(rules, 'error-rate')?.threshold).toBe(0.1)
    expect(byId(rules, 'p99-latency')?.enabled).toBe(false)
    expect(byId(rules, 'p95-latency')).toEqual(byId(defaultAlertRules(), 'p95-latency'))
    expect(byId(rules, 'min-rps')?.enabled).toBe(false)
  })

  test('reports every problem at once and still applies the valid settings', () => {
    const { rules, errors } = parseAlertRules({
      ALERT_P95_LATENCY_MS: 'abc',
      ALERT_P99_LATENCY_MS: '-1',
      ALERT_ERROR_RATE: '5',
      ALERT_MEMORY_GROWTH_MB: 'lots',
      ALERT_MIN_RPS: '2',
      ALERT_HOLD_MS: 'Infinity',
    })
    expect(errors).toEqual([
      "ALERT_P95_LATENCY_MS must be a non-negative number of milliseconds (0 disables the rule), got 'abc'",
      "ALERT_P99_LATENCY_MS must be a non-negative number of milliseconds (0 disables the rule), got '-1'",
      "ALERT_ERROR_RATE must be a ratio from 0 to 1 (e.g. 0.05) or a percentage (e.g. 5%), 0 disables the rule, got '5'",
      "ALERT_MEMORY_GROWTH_MB must be a non-negative number of MiB (0 disables the rule), got 'lots'",
      "ALERT_HOLD_MS must be a non-negative number of milliseconds, got 'Infinity'",
    ])
    expect(byId(rules, 'p95-latency')?.threshold).toBe(500)
    expect(byId(rules, 'min-rps')).toMatchObject({ threshold: 2, enabled: true })
  })

  test('rejects a bare or out-of-range percentage', () => {
    expect(parseAlertRules({ ALERT_ERROR_RATE: '%' }).errors).toHaveLength(1)
    expect(parseAlertRules({ ALERT_ERROR_RATE: '150%' }).errors).toHaveLength(1)
  })

  test('reports a setting whose rule is missing from the base rules', () => {
    const base = defaultAlertRules().filter((rule) => rule.id !== 'min-rps')
    expect(parseAlertRules({ ALERT_MIN_RPS: '3' }, base).errors).toEqual([
      "cannot apply the setting for alert rule 'min-rps': the base rules have no rule with that id",
    ])
  })
})

describe('validateAlertRules', () => {
  test('lists every problem of every enabled rule', () => {
    const [rule] = defaultAlertRules()
    if (rule === undefined) throw new Error('no default rule')
    const problems = validateAlertRules(
      [
        { ...rule, id: 'a', metric: 'durationMs.p42' as never, windowMs: 1234 },
        { ...rule, id: 'a' },
        { ...rule, id: 'b', clearThreshold: 600, holdMs: -1, minCount: 1.5 },
        { ...rule, id: 'c', windowMs: 1234, enabled: false },
      ],
      [10_000, 60_000],
    )
    expect(problems).toEqual([
      "alert rule 'a' has unknown metric 'durationMs.p42'",
      "alert rule 'a' uses windowMs 1234, which is not one of windowsMs [10000, 60000]",
      "alert rule 'a' is defined more than once",
      "alert rule 'b' clearThreshold (600) must not be above threshold (500) for comparator '>'",
      "alert rule 'b' holdMs must be a non-negative number, got -1",
      "alert rule 'b' minCount must be a non-negative integer, got 1.5",
    ])
  })
})
