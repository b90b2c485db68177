/**
 * Bounded model labels: the first `max` distinct well-formed model ids keep
 * their name, everything else is `other`, so clients cannot blow up label
 * cardinality by sending made-up model names.
 */
export function createModelLabeler (max = 32): (model: string | undefined) => string {
  const seen = new Set<string>()
  const valid = /^[a-z0-9][a-z0-9._:@-]{0,63}$/i
  // Every response brings its model as a new string; most bring the same model as the one
  // before. Comparing with that one (a length check and a byte compare) spares hashing the new
  // string for the set, and the label returned is the first-seen string, whose hash V8 has kept:
  // maps keyed by it do not hash it again either.
  let lastModel: string | undefined
  let lastLabel = 'none'
  return (model) => {
    if (model === undefined) return 'none'
    if (model === lastModel) return lastLabel
    let label: string
    if (seen.has(model)) label = model
    else if (seen.size >= max || !valid.test(model)) label = 'other'
    else {
      seen.add(model)
      label = model
    }
    lastModel = model
    lastLabel = label
    return label
  }
}

/** Closed sets for stop reasons and stream error types (ANTHROPIC_API.md §4.2, §5.2). */
export const STOP_REASONS = new Set(['end_turn', 'max_tokens', 'stop_sequence', 'tool_use', 'pause_turn', 'refusal', 'model_context_window_exceeded'])
export const ERROR_TYPES = new Set([
  'invalid_request_error', 'authentication_error', 'billing_error', 'permission_error', 'not_found_error', 'request_too_large',
  'rate_limit_error', 'api_error', 'timeout_error', 'overloaded_error', 'conflict_error',
])

export function boundedLabel (value: string, allowed: ReadonlySet<string>): string {
  return allowed.has(value) ? value : 'other'
}

/**
 * `boundedLabel` for one closed set, remembering the last value: the same value again (the usual
 * case) is compared, not hashed, and the label returned is the first such string.
 */
export function createBoundedLabeler (allowed: ReadonlySet<string>): (value: string) => string {
  let lastValue: string | undefined
  let lastLabel = 'other'
  return (value) => {
    if (value === lastValue) return lastLabel
    lastLabel = boundedLabel(value, allowed)
    lastValue = value
    return lastLabel
  }
}
