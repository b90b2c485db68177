import type { BenchSettings } from './bench-options.js'
import type { CpuIdleFacts } from './cpu-idle.js'
import type { Pinning } from './pinning.js'

/** The name of the measured proxy in results (the apt proxy, or `--target`). */
export const PROXY = 'proxy'
/** The name of the upstream measured without a proxy. */
export const DIRECT = 'direct'

/** `direct`: the emulator itself; `proxy`: the apt proxy (or `--target`); `compare`: a `--compare` proxy. */
export type TargetKind = 'direct' | 'proxy' | 'compare'

export interface TargetInfo {
  name: string
  kind: TargetKind
  url: string
  /** Shell command of a `compare` target. */
  command: string | null
  /** PID of the measured process (tree), null when unknown (e.g. `--target` without `--target-pid`). */
  pid: number | null
  /** CPUs it was pinned to, null when not pinned. */
  cpus: string | null
  startupMs: number | null
  /** Why the target was dropped from the run, null while it is measured. */
  failure: string | null
}

export interface PercentilePoint {
  percentile: number
  ms: number
}

/** Latency at concurrency 1; every figure is the median over rounds. */
export interface LatencyFigures {
  rounds: number
  requests: number
  errors: number
  meanMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  /** Target minus direct, paired per round, median over rounds (µs); null for direct. */
  addedP50Us: number | null
  addedP99Us: number | null
  /** The distribution of all rounds merged, for charts. */
  distribution: PercentilePoint[]
}

/** One concurrency level of the throughput test; medians over rounds unless noted. */
export interface ThroughputLevel {
  concurrency: number
  rounds: number
  /** Sum over rounds. */
  requests: number
  /** Sum over rounds. */
  errors: number
  errorRate: number
  requestsPerSecond: number
  meanMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  /** requests/s ÷ direct's in the same round, median; null for direct. */
  ratioToDirect: number | null
  /** CPU time (user + system) of the target's processes per request, µs; null when unknown. */
  cpuUsPerRequest: number | null
  /** Upstream connections opened and requests received during the measured windows (sums), from the emulator. */
  upstreamConnections: number | null
  upstreamRequests: number | null
  /** 1 − upstreamConnections ÷ upstreamRequests. */
  reuse: number | null
  /** Load generator CPU use, % of one core (largest round). */
  generatorCpuPercent: number
  /** The upstream's (emulator's) CPU use, % of one core (largest round); null when unknown. */
  upstreamCpuPercent: number | null
}

/** Time to first event and gaps between events of paced streams under concurrency. */
export interface TtfeFigures {
  streams: number
  events: number
  paceMs: number
  rounds: number
  completed: number
  errors: number
  firstEventP50Ms: number
  firstEventP99Ms: number
  gapP50Ms: number
  gapP99Ms: number
  /** Target minus direct, paired per round, median (µs); null for direct. */
  addedFirstEventP50Us: number | null
  addedFirstEventP99Us: number | null
  addedGapP50Us: number | null
  addedGapP99Us: number | null
  generatorCpuPercent: number
}

/** One level of the paced-stream stall test. */
export interface StallLevel {
  streams: number
  held: boolean
  /** Waves run at this level (a failed wave is retried once). */
  attempts: number
  /** Of the last wave: */
  clean: number
  stalled: number
  failed: number
  firstError: string | null
  maxGapMs: number
  p99FirstEventMs: number
  maxFirstEventMs: number
  /** RSS of the target's processes before the wave and at its peak, KiB. */
  idleRssKb: number | null
  peakRssKb: number | null
  /** (peak − idle) ÷ streams, KiB. */
  kbPerStream: number | null
  /**
   * The target's CPU time over the last wave ÷ the events it delivered (its requests
   * included), µs; null when the CPU time cannot be read. For direct, the emulator's.
   */
  cpuUsPerEvent: number | null
  generatorCpuPercent: number
}

export interface StallFigures {
  events: number
  paceMs: number
  limitMs: number
  levels: StallLevel[]
  /** Largest level held (each level below it held too); 0 when none. */
  maxStreamsHeld: number
  /** maxStreamsHeld ÷ direct's (the load side's own limit); null for direct. */
  ratioToDirect: number | null
}

export interface MemoryFigures {
  streams: number
  idleRssKb: number
  peakRssKb: number
  /** (peak − idle) ÷ streams, from a process that has seen only a little traffic, KiB. */
  kbPerStream: number
  /**
   * The cost of one more open stream once the process is loaded: RSS with
   * `streams` long streams open, then with `streams` more, the difference ÷
   * `streams`, KiB. A garbage-collected runtime's one-off growth to its working
   * size (V8's young generation) is in `kbPerStream` but not here. Absent when
   * it could not be measured (a stream failed, or the run was interrupted).
   */
  marginalKbPerStream?: number
}

export interface ReuseFigures {
  concurrency: number
  upstreamConnections: number
  upstreamRequests: number
  reuse: number
}

export interface CpuFigures {
  concurrency: number
  usPerRequest: number
  /** The emulator's own CPU per request in the same run (direct runs at the same level). */
  upstreamUsPerRequest: number | null
  /** usPerRequest ÷ upstreamUsPerRequest: CPU cost relative to a plain node:http server doing more work. */
  ratioToUpstream: number | null
}

/** Highest request rate among the levels whose p99 stays within the bound (and no errors). */
export interface RateWithinBound {
  p99BoundMs: number
  requestsPerSecond: number
  concurrency: number
}

export interface TargetFigures {
  latency?: LatencyFigures
  throughput?: ThroughputLevel[]
  rateWithinP99Bound?: RateWithinBound | null
  ttfe?: TtfeFigures
  stall?: StallFigures
  memory?: MemoryFigures | null
  reuse?: ReuseFigures | null
  cpu?: CpuFigures | null
}

/**
 * One-byte TCP round trips from the load side's CPU to the proxies' CPU and back (an echo
 * server pinned where the proxies run, none of them running), medians over the latency rounds.
 * A proxy on its own CPU adds two such crossings to every request at concurrency 1
 * (client → proxy → upstream and back), so about twice this is the machine's floor under the
 * added latency, whatever the proxy.
 */
export interface CrossCoreFigures {
  rounds: number
  fromCpus: string | null
  toCpus: string | null
  p50Us: number
  p99Us: number
}

export interface MachineFacts {
  cpus: number
  cpuModel: string
  nodeVersion: string
  os: string
  arch: string
  totalMemoryMb: number
  clockTicksPerSecond: number
  pinning: Pinning
  /** How idle CPUs wait (sets the cross-core round trip's cost). Absent in older results. */
  cpuIdle?: CpuIdleFacts
}

export interface TimelineSample {
  /** ms since the run started. */
  atMs: number
  /** RSS of each target's processes, KiB, by target name. */
  rssKb: Record<string, number>
}

export interface TimelinePhase {
  atMs: number
  label: string
}

export interface BenchResult {
  tool: '@apt/bench'
  version: 1
  startedAt: string
  finishedAt: string
  durationMs: number
  /** Stopped early (signal); the figures are what was measured so far. */
  interrupted: boolean
  /** The emulator and the proxy were started by the run (false with `target`). */
  selfContained: boolean
  settings: BenchSettings
  machine: MachineFacts
  targets: TargetInfo[]
  figures: Record<string, TargetFigures>
  /** The machine's cross-core round trip (latency test, pinned runs); null when not measured. Absent in older results. */
  crossCore?: CrossCoreFigures | null
  /** Largest load-generator CPU use seen in any measured window, % of one core. */
  generatorMaxCpuPercent: number
  timeline: { samples: TimelineSample[], phases: TimelinePhase[] }
  /** Things the reader must know (pinning unavailable, a target failed, a saturated generator, ...). */
  notes: string[]
}
