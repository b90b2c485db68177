/**
 * Published by `run()` through `onProgress`. The run is planned up front as a list of
 * steps with estimated durations, so a renderer can show a fraction done and an ETA.
 */
export type ProgressEvent =
  | {
      type: 'step'
      /** `latency`, `throughput`, `ttfe`, `stall`, `startup`. */
      phase: string
      /** What is being measured now, e.g. `proxy c=128 round 2/3`. */
      label: string
      /** Estimated ms of the steps finished so far. */
      doneEstimateMs: number
      /** Estimated ms of the whole plan (it shrinks when a stall test stops early). */
      totalEstimateMs: number
      /** Wall-clock ms since the run started. */
      elapsedMs: number
    }
  | { type: 'note', message: string }
  | { type: 'done', elapsedMs: number }
