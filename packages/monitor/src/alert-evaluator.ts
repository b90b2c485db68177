import type { AlertRule } from './alert-rules.js'

/** `pending`: breaching, waiting for `holdMs` before firing. */
export type AlertStateName = 'ok' | 'pending' | 'firing'

/** Current state of one enabled rule, as returned by `monitor.alerts()`. */
export interface AlertState {
  rule: AlertRule
  state: AlertStateName
  /** Value seen at the last evaluation (null: no data, or not evaluated yet). */
  value: number | null
  /** When the current state began (monitor clock, ms). */
  since: number
  /** When the rule was last evaluated (null: never). */
  evaluatedAt: number | null
}

/** A rule starting to fire or resolving, as returned by `evaluateAlerts()` and passed to `onAlert` callbacks. */
export interface AlertTransition {
  rule: AlertRule
  state: 'firing' | 'resolved'
  /** The value that caused the transition; null when the rule resolved for lack of data. */
  value: number | null
  /** Monitor clock, ms. */
  at: number
}

interface Entry {
  rule: AlertRule
  state: AlertStateName
  value: number | null
  since: number
  evaluatedAt: number | null
}

/**
 * Per-rule state machine: ok → pending (breach seen) → firing (breach held `holdMs`),
 * firing → ok only once the value is past `clearThreshold` (hysteresis) or there is no
 * data. A pending rule whose breach stops goes back to ok without a transition.
 */
export class AlertEvaluator {
  readonly #entries: Entry[]

  constructor (rules: readonly AlertRule[], startedAt: number) {
    this.#entries = rules
      .filter((rule) => rule.enabled)
      .map((rule) => ({ rule, state: 'ok', value: null, since: startedAt, evaluatedAt: null }))
  }

  evaluate (at: number, readValue: (rule: AlertRule) => number | null): AlertTransition[] {
    const transitions: AlertTransition[] = []
    for (const entry of this.#entries) {
      const { rule } = entry
      const value = readValue(rule)
      entry.value = value
      entry.evaluatedAt = at
      const breaching = value !== null && (rule.comparator === '>' ? value > rule.threshold : value < rule.threshold)
      if (entry.state === 'firing') {
        const cleared = value === null || (rule.comparator === '>' ? value < rule.clearThreshold : value > rule.clearThreshold)
        if (cleared) {
          entry.state = 'ok'
          entry.since = at
          transitions.push({ rule, state: 'resolved', value, at })
        }
      } else if (!breaching) {
        if (entry.state === 'pending') {
          entry.state = 'ok'
          entry.since = at
        }
      } else {
        if (entry.state === 'ok') {
          entry.state = 'pending'
          entry.since = at
        }
        if (at - entry.since >= rule.holdMs) {
          entry.state = 'firing'
          entry.since = at
          transitions.push({ rule, state: 'firing', value, at })
        }
      }
    }
    return transitions
  }

  states (): AlertState[] {
    return this.#entries.map((entry) => ({ ...entry }))
  }
}
