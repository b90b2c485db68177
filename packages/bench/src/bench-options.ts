import type { ProgressEvent } from './progress-event.js'
import type { ReferencePreset } from './references/reference-presets.js'

/**
 * The upstream the bench starts: `fast` answers the bench's two exchanges with prebuilt bytes,
 * so one core of load side outruns any proxy under test; `full` is the whole API emulator.
 */
export type EmulatorKind = 'fast' | 'full'

/** Which figures a run measures. `concurrent` covers throughput, CPU per request and connection reuse. */
export type TestType = 'latency' | 'streaming' | 'concurrent' | 'all'

/**
 * Another proxy to measure side by side: a shell command that listens on
 * `127.0.0.1:$PORT` and forwards to `$UPSTREAM_URL`, or a reference preset.
 */
export type CompareTarget = { name: string, command: string } | { name?: string, preset: ReferencePreset }

export interface RunOptions {
  /** Default `all`. */
  testType?: TestType
  /** Short settings that prove the tool works end to end (about 20 s). Default false. */
  quick?: boolean
  /** Requests per target per round of the latency test (concurrency 1). */
  requests?: number
  /** Concurrency levels of the throughput test (`--workers`). Default [1, 16, 128]. */
  concurrencyLevels?: readonly number[]
  /** Measured seconds per target, level and round of the throughput test (`--duration`). */
  durationSeconds?: number
  /** Interleaved rounds (direct, proxy, ...) per figure; medians are reported. */
  rounds?: number
  /** URL of a proxy that is already running; nothing is started, "direct" needs `upstream`. */
  target?: string
  /** PID of the `target` proxy, to read its CPU time and memory from /proc. */
  targetPid?: number
  /** Upstream URL to measure directly when `target` is set. */
  upstream?: string
  /** Further proxies started with a shell command and measured in the same rounds. */
  compare?: readonly CompareTarget[]
  /** Also measure the reference presets (undici-minimal, fastify-http-proxy, nginx when installed). Default: true in full self-contained runs. */
  references?: boolean
  /** Pin the proxy to CPU 0 and the upstream to CPU 1 with `taskset` when available. Default true. */
  pin?: boolean
  /** Also pin the calling process (the load generator) to CPU 1. A process-wide side effect. Default false (the CLI sets it). */
  pinLoadGenerator?: boolean
  /** Concurrent paced stream levels of the stall test. Default [64, 128, 256, 512, 1024]. */
  streamLevels?: readonly number[]
  /** SSE events per paced stream. Default 64. */
  streamEvents?: number
  /** Delay between SSE events of a paced stream, in ms. Default 20. */
  streamPaceMs?: number
  /** A stream stalls when a gap between events (or the wait for the first) exceeds `streamPaceMs + stallMarginMs`. Default 30. */
  stallMarginMs?: number
  /** Concurrent streams of the time-to-first-event test. Default 100. */
  ttfeStreams?: number
  /** p99 bound of "highest request rate that holds a p99 bound", in ms. Default 10. */
  p99BoundMs?: number
  /** The stall level whose RSS growth gives the memory-per-stream headline. Default 256. */
  memoryStreams?: number
  /** The upstream the run starts (`--emulator`). Default `fast`. */
  emulator?: EmulatorKind
  /** Path of the proxy's entry script. Default `apps/proxy/dist/main.js` of this repository. */
  proxyEntry?: string
  /** Extra environment for the proxy process (on top of this process's environment). */
  proxyEnv?: Readonly<Record<string, string>>
  /** Stops the run; `run()` then resolves with what was measured, `interrupted: true`. */
  signal?: AbortSignal
  onProgress?: (event: ProgressEvent) => void
}

/** Every setting of a run after defaults, as recorded in the result. */
export interface BenchSettings {
  testType: TestType
  quick: boolean
  emulator: EmulatorKind
  rounds: number
  /** Rounds of the latency test: more than the others, its p99 is the noisiest figure. */
  latencyRounds: number
  latencyRequests: number
  latencyWarmupRequests: number
  concurrencyLevels: number[]
  durationMs: number
  warmupMs: number
  ttfeStreams: number
  ttfeEvents: number
  ttfeDurationMs: number
  ttfeRounds: number
  streamLevels: number[]
  streamEvents: number
  streamPaceMs: number
  stallMarginMs: number
  streamRampMs: number
  p99BoundMs: number
  memoryStreams: number
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer, got ${String(value)}`)
  return value
}

function levels(name: string, values: readonly number[]): number[] {
  if (values.length === 0) throw new TypeError(`${name} must not be empty`)
  return [...new Set(values.map((value) => positiveInteger(name, value)))].sort((a, b) => a - b)
}

/** Resolves defaults: full mode runs about 45 s per measured target, quick mode about 8 s. */
export function resolveSettings(options: RunOptions): BenchSettings {
  const quick = options.quick ?? false
  const streamEvents = positiveInteger('streamEvents', options.streamEvents ?? (quick ? 16 : 64))
  const settings: BenchSettings = {
    testType: options.testType ?? 'all',
    quick,
    emulator: options.emulator ?? 'fast',
    rounds: positiveInteger('rounds', options.rounds ?? (quick ? 2 : 3)),
    latencyRounds: positiveInteger('rounds', options.rounds ?? (quick ? 2 : 5)),
    latencyRequests: positiveInteger('requests', options.requests ?? (quick ? 300 : 2000)),
    latencyWarmupRequests: quick ? 100 : 300,
    concurrencyLevels: levels('concurrencyLevels', options.concurrencyLevels ?? (quick ? [1, 128] : [1, 16, 128])),
    durationMs: Math.round(1000 * (options.durationSeconds ?? (quick ? 0.6 : 1.5))),
    warmupMs: quick ? 200 : 500,
    ttfeStreams: positiveInteger('ttfeStreams', options.ttfeStreams ?? (quick ? 50 : 100)),
    ttfeEvents: quick ? 8 : 16,
    ttfeDurationMs: quick ? 800 : 2000,
    ttfeRounds: quick ? 1 : 3,
    streamLevels: levels('streamLevels', options.streamLevels ?? (quick ? [64, 128] : [64, 128, 256, 512, 1024])),
    streamEvents,
    streamPaceMs: options.streamPaceMs ?? 20,
    stallMarginMs: options.stallMarginMs ?? 30,
    streamRampMs: quick ? 200 : 1000,
    p99BoundMs: options.p99BoundMs ?? 10,
    memoryStreams: positiveInteger('memoryStreams', options.memoryStreams ?? (quick ? 128 : 256)),
  }
  if (settings.emulator !== 'fast' && settings.emulator !== 'full') throw new TypeError(`emulator must be 'fast' or 'full', got ${String(options.emulator)}`)
  if (!(settings.durationMs > 0)) throw new TypeError(`durationSeconds must be positive, got ${String(options.durationSeconds)}`)
  if (!(settings.streamPaceMs >= 0)) throw new TypeError('streamPaceMs must be >= 0')
  if (!(settings.stallMarginMs >= 0)) throw new TypeError('stallMarginMs must be >= 0')
  return settings
}
