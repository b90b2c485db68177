/**
 * Bounded model labels: the first `max` distinct well-formed model ids keep
 * their name, everything else is `other`, so clients cannot blow up label
 * cardinality by sending made-up model names.
 */
export function createModelLabeler (max = 32): (model: string | undefined) => string {
  const seen = new Set<string>()
  const valid = /^[a-z0-9][a-z0-9._:@-]{0,63}$/i
  return (model) => {
    if (model === undefined) return 'none'
    if (seen.has(model)) return model
    if (seen.size >= max || !valid.test(model)) return 'other'
    seen.add(model)
    return model
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
