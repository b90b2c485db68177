import { describe, expect, test } from 'vitest'
import { AlertEvaluator, type AlertTransition } from './alert-evaluator.js'
import type { AlertRule } from './alert-rules.js'

const p95Rule: AlertRule = {
  id: 'p95',
  metric: 'durationMs.p95',
  comparator: '>',
  threshold: 500,
  clearThreshold: 450,
  windowMs: 60_000,
  holdMs: 30_000,
  minCount: 0,
  enabled: true,
}

/** Feeds `values` one per `stepMs`, returning every transition as [time, state]. */
function run (rule: AlertRule, values: readonly (number | null)[], stepMs = 10_000): [number, AlertTransition['state']][] {
  const evaluator = new AlertEvaluator([rule], 0)
  const seen: [number, AlertTransition['state']][] = []
  values.forEach((value, index) => {
    for (const transition of evaluator.evaluate(index * stepMs, () => value)) seen.push([transition.at, transition.state])
  })
  return seen
}

describe('AlertEvaluator', () => {
  test('fires only after the breach has held for holdMs', () => {
    // breach starts at t=10 s; 30 s hold → fires at t=40 s, not before
    expect(run(p95Rule, [100, 600, 600, 600, 600, 600])).toEqual([[40_000, 'firing']])
  })

  test('a breach shorter than holdMs never fires, and the hold restarts after a dip', () => {
    // breaches for 20 s, dips, breaches again for 20 s: never 30 s in a row
    expect(run(p95Rule, [600, 600, 600, 100, 600, 600, 600, 100])).toEqual([])
  })

  test('hysteresis: values oscillating between clear and fire thresholds do not flap', () => {
    const values = [600, 600, 600, 600, 480, 520, 470, 510, 460, 499, 449, 520]
    // fires at 30 s; stays firing through 460..520; resolves only at 449 (< 450)
    expect(run(p95Rule, values)).toEqual([
      [30_000, 'firing'],
      [100_000, 'resolved'],
    ])
  })

  test('without hysteresis the same series would flap (the band is what prevents it)', () => {
    const noBand = { ...p95Rule, clearThreshold: 500, holdMs: 0 }
    expect(run(noBand, [600, 480, 520, 470]).map(([, state]) => state)).toEqual(['firing', 'resolved', 'firing', 'resolved'])
  })

  test('holdMs 0 fires on the first breaching evaluation', () => {
    expect(run({ ...p95Rule, holdMs: 0 }, [100, 501])).toEqual([[10_000, 'firing']])
  })

  test("comparator '<' fires below the threshold and clears above clearThreshold", () => {
    const minRps: AlertRule = { ...p95Rule, id: 'min-rps', metric: 'requestsPerSecond', comparator: '<', threshold: 1, clearThreshold: 1.1, holdMs: 10_000 }
    expect(run(minRps, [5, 0.5, 0.5, 1.05, 0.9, 1.2])).toEqual([
      [20_000, 'firing'],
      [50_000, 'resolved'],
    ])
  })

  test('no data (null) never fires and resolves a firing rule', () => {
    expect(run({ ...p95Rule, holdMs: 0 }, [null, null, 600, null])).toEqual([
      [20_000, 'firing'],
      [30_000, 'resolved'],
    ])
  })

  test('transitions carry the rule, the value and the time; states() reflects pending and firing', () => {
    const evaluator = new AlertEvaluator([p95Rule, { ...p95Rule, id: 'off', enabled: false }], 0)
    expect(evaluator.states().map((state) => state.rule.id)).toEqual(['p95'])
    expect(evaluator.evaluate(1_000, () => 700)).toEqual([])
    expect(evaluator.states()[0]).toMatchObject({ state: 'pending', value: 700, since: 1_000, evaluatedAt: 1_000 })
    const [transition] = evaluator.evaluate(31_000, () => 800)
    expect(transition).toEqual({ rule: p95Rule, state: 'firing', value: 800, at: 31_000 })
    expect(evaluator.states()[0]).toMatchObject({ state: 'firing', since: 31_000 })
  })
})
