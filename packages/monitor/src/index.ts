export type { AlertState, AlertStateName, AlertTransition } from './alert-evaluator.js'
export { type AlertMetric, type AlertRule, defaultAlertRules, type ParsedAlertRules, parseAlertRules } from './alert-rules.js'
export type { LatencySummary, SignificantDigits } from './distribution.js'
export type { HistoryEntry } from './history.js'
export { createLatencyHistogram, type LatencyHistogram, type LatencyHistogramOptions } from './latency-histogram.js'
export {
  createMonitor,
  type EventLoopSnapshot,
  type FinishResult,
  type MemorySnapshot,
  MONITOR_ALERT_CHANNEL,
  type Monitor,
  type MonitorSnapshot,
  type RequestHandle,
  type RequestSample,
} from './monitor.js'
export { MonitorError, type MonitorErrorCode } from './monitor-error.js'
export { DEFAULT_EVENT_LOOP_RESOLUTION_MS, type MemoryUsage, type MonitorOptions } from './monitor-options.js'
export type { RouteStats, StatusCounts, WindowEventLoopDelay, WindowMemory, WindowStats } from './sliding-window.js'
export { type Baseline, leastSquaresSlope, type RegressionOptions, type RegressionReport, type TrendReport } from './trend.js'
