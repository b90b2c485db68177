/**
 * Closed set of error codes `@apt/monitor` produces.
 *
 * - `APT_MONITOR_INVALID_OPTIONS`: `createMonitor` options or alert rules are invalid
 *   (the message lists every problem at once).
 * - `APT_MONITOR_INVALID_ARGUMENT`: a recorded value or a requested percentile is not a
 *   finite, non-negative number in range.
 * - `APT_MONITOR_CLOSED`: `sample()`, `tick()` or `evaluateAlerts()` called after `close()`.
 * - `APT_MONITOR_CALLBACK_FAILED`: an `onAlert` callback threw; the thrown value is the `cause`.
 * - `APT_MONITOR_SAMPLE_FAILED`: the internal timer's periodic `tick()` threw (e.g. an injected
 *   `memoryUsage` failed); the thrown value is the `cause`.
 *
 * The last two are never thrown: they are handed to the `onError` option.
 */
export type MonitorErrorCode =
  | 'APT_MONITOR_INVALID_OPTIONS'
  | 'APT_MONITOR_INVALID_ARGUMENT'
  | 'APT_MONITOR_CLOSED'
  | 'APT_MONITOR_CALLBACK_FAILED'
  | 'APT_MONITOR_SAMPLE_FAILED'

export class MonitorError extends Error {
  override readonly name = 'MonitorError'
  readonly code: MonitorErrorCode

  constructor (code: MonitorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
