import type { IncomingHttpHeaders } from 'node:http'

/** Which content blocks an emulated message carries. */
export type EmulatorScenario = 'text' | 'tool_use' | 'thinking' | 'citations' | 'all'
/** Response `content-encoding` the emulator applies on request. */
export type EmulatorEncoding = 'gzip' | 'br'
/**
 * `output`: `message_delta.usage` is `{"output_tokens":N}` (older streams);
 * `full`: it also repeats the input-side counters (newer streams).
 */
export type EmulatorDeltaUsage = 'output' | 'full'

/**
 * Per-request behaviour. Each field is set by one `x-emulator-*` request header
 * and defaults to `EmulatorOptions.defaults`, then to `DEFAULT_CONTROLS`.
 * `null` means "off" where `0` is a meaningful value.
 */
export interface EmulatorControls {
  /** `x-emulator-deltas`: content deltas per content block. */
  deltas: number
  /** `x-emulator-delta-size`: characters per text/thinking/JSON delta. */
  deltaSize: number
  /** `x-emulator-pace-ms`: delay between SSE events; 0 writes the whole stream at once. */
  paceMs: number
  /** `x-emulator-scenario` */
  scenario: EmulatorScenario
  /** `x-emulator-cache-creation`: `usage.cache_creation_input_tokens`. */
  cacheCreationInputTokens: number
  /** `x-emulator-cache-read`: `usage.cache_read_input_tokens`. */
  cacheReadInputTokens: number
  /** `x-emulator-delta-usage` */
  deltaUsage: EmulatorDeltaUsage
  /** `x-emulator-status`: fail with this HTTP status (400-599); 0 = succeed. */
  status: number
  /** `x-emulator-error-message`: `error.message` of that failure; null = a default per type. */
  errorMessage: string | null
  /** `x-emulator-retry-after`: value of a `retry-after` response header; null = none. */
  retryAfter: string | null
  /** `x-emulator-should-retry`: value of an `x-should-retry` response header; null = none. */
  shouldRetry: string | null
  /** `x-emulator-fail-first`: the first N requests with the same attempt key fail; 0 = off. */
  failFirst: number
  /** `x-emulator-attempt-key`: groups requests for `failFirst`. */
  attemptKey: string | null
  /** `x-emulator-error-after`: send `event: error` after this many SSE events, then end. */
  errorAfterEvents: number | null
  /** `x-emulator-drop-after`: destroy the socket after this many SSE events. */
  dropAfterEvents: number | null
  /** `x-emulator-headers-delay-ms`: wait before sending response headers. */
  headersDelayMs: number
  /** `x-emulator-stall-after`: pause `stallMs` after this many SSE events. */
  stallAfterEvents: number | null
  /** `x-emulator-stall-ms` */
  stallMs: number
  /** `x-emulator-encoding`: compress the response body; null = never compress. */
  encoding: EmulatorEncoding | null
  /** `x-emulator-redirect`: answer 307 with this `location`. */
  redirect: string | null
}

export const DEFAULT_CONTROLS: Readonly<EmulatorControls> = Object.freeze({
  deltas: 5,
  deltaSize: 8,
  paceMs: 0,
  scenario: 'text',
  cacheCreationInputTokens: 0,
  cacheReadInputTokens: 0,
  deltaUsage: 'output',
  status: 0,
  errorMessage: null,
  retryAfter: null,
  shouldRetry: null,
  failFirst: 0,
  attemptKey: null,
  errorAfterEvents: null,
  dropAfterEvents: null,
  headersDelayMs: 0,
  stallAfterEvents: null,
  stallMs: 0,
  encoding: null,
  redirect: null,
})

/** A control header whose value cannot be used; answered with 400 invalid_request_error. */
export class ControlHeaderError extends Error {
  override readonly name = 'ControlHeaderError'
}

type ControlParser<Value> = (raw: string, header: string) => Value

const MAX_COUNT = 1_000_000
const MAX_MS = 3_600_000

function integer(min: number, max: number): ControlParser<number> {
  return (raw, header) => {
    const value = Number(raw)
    if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
      throw new ControlHeaderError(`${header} must be an integer from ${min} to ${max}, got '${raw}'`)
    }
    return value
  }
}

function oneOf<const Values extends readonly string[]>(values: Values): ControlParser<Values[number]> {
  return (raw, header) => {
    const value = raw.trim()
    if (!values.includes(value)) {
      throw new ControlHeaderError(`${header} must be one of ${values.join(', ')}, got '${raw}'`)
    }
    return value
  }
}

const text: ControlParser<string> = (raw) => raw

const count = integer(0, MAX_COUNT)
const milliseconds = integer(0, MAX_MS)

const status: ControlParser<number> = (raw, header) => {
  const value = integer(0, 599)(raw, header)
  if (value !== 0 && value < 400) {
    throw new ControlHeaderError(`${header} must be an HTTP error status from 400 to 599, got '${raw}'`)
  }
  return value
}

type ControlTable = { readonly [Key in keyof EmulatorControls]: readonly [header: string, parse: ControlParser<EmulatorControls[Key]>] }

/** The header behind each control. The one place a new control is added. */
const CONTROL_HEADERS: ControlTable = {
  deltas: ['x-emulator-deltas', count],
  deltaSize: ['x-emulator-delta-size', count],
  paceMs: ['x-emulator-pace-ms', milliseconds],
  scenario: ['x-emulator-scenario', oneOf(['text', 'tool_use', 'thinking', 'citations', 'all'] as const)],
  cacheCreationInputTokens: ['x-emulator-cache-creation', integer(0, Number.MAX_SAFE_INTEGER)],
  cacheReadInputTokens: ['x-emulator-cache-read', integer(0, Number.MAX_SAFE_INTEGER)],
  deltaUsage: ['x-emulator-delta-usage', oneOf(['output', 'full'] as const)],
  status: ['x-emulator-status', status],
  errorMessage: ['x-emulator-error-message', text],
  retryAfter: ['x-emulator-retry-after', text],
  shouldRetry: ['x-emulator-should-retry', text],
  failFirst: ['x-emulator-fail-first', count],
  attemptKey: ['x-emulator-attempt-key', text],
  errorAfterEvents: ['x-emulator-error-after', count],
  dropAfterEvents: ['x-emulator-drop-after', count],
  headersDelayMs: ['x-emulator-headers-delay-ms', milliseconds],
  stallAfterEvents: ['x-emulator-stall-after', count],
  stallMs: ['x-emulator-stall-ms', milliseconds],
  encoding: ['x-emulator-encoding', oneOf(['gzip', 'br'] as const)],
  redirect: ['x-emulator-redirect', text],
}

const CONTROL_KEYS = Object.keys(CONTROL_HEADERS) as (keyof EmulatorControls)[]

/** Header name → control key, for documentation and tooling. */
export const EMULATOR_CONTROL_HEADERS: Readonly<Record<keyof EmulatorControls, string>> = Object.freeze(
  Object.fromEntries(CONTROL_KEYS.map((key) => [key, CONTROL_HEADERS[key][0]])) as Record<keyof EmulatorControls, string>,
)

/**
 * The request headers that select `controls`, e.g. `{ deltas: 3 }` →
 * `{ 'x-emulator-deltas': '3' }`. `null` (off) fields are omitted: they are
 * what a request without the header gets unless `defaults` say otherwise.
 */
export function emulatorControlHeaders(controls: Partial<EmulatorControls>): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const key of CONTROL_KEYS) {
    const value = controls[key]
    if (value !== undefined && value !== null) headers[CONTROL_HEADERS[key][0]] = String(value)
  }
  return headers
}

function parseControl<Key extends keyof EmulatorControls>(key: Key, raw: string): EmulatorControls[Key] {
  const [header, parse] = CONTROL_HEADERS[key] as readonly [string, ControlParser<EmulatorControls[Key]>]
  return parse(raw, header)
}

/**
 * Overlays the `x-emulator-*` headers of one request on `defaults`. Returns
 * `defaults` itself (no allocation) when the request carries none of them.
 * Throws `ControlHeaderError` naming the header on an unusable value.
 */
export function resolveControls(headers: IncomingHttpHeaders, defaults: Readonly<EmulatorControls>): Readonly<EmulatorControls> {
  let controls: EmulatorControls | undefined
  for (const key of CONTROL_KEYS) {
    const raw = headers[CONTROL_HEADERS[key][0]]
    if (raw === undefined) continue
    controls ??= { ...defaults }
    setControl(controls, key, parseControl(key, Array.isArray(raw) ? raw.join(', ') : raw))
  }
  return controls ?? defaults
}

function setControl<Key extends keyof EmulatorControls>(controls: EmulatorControls, key: Key, value: EmulatorControls[Key]): void {
  controls[key] = value
}
