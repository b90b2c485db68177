import { expect, test } from 'vitest'
import * as monitor from '../src/index.js'

// An API change shows up here as a diff.
test('public runtime exports', () => {
  expect(Object.keys(monitor).sort()).toEqual([
    'DEFAULT_EVENT_LOOP_RESOLUTION_MS',
    'MONITOR_ALERT_CHANNEL',
    'MonitorError',
    'createLatencyHistogram',
    'createMonitor',
    'defaultAlertRules',
    'leastSquaresSlope',
    'parseAlertRules',
  ])
})
