import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { createLatencyHistogram, type LatencyHistogram, type LatencySummary } from '@apt/monitor'
import type { Dispatcher } from 'undici'
import { type BenchSettings, type CompareTarget, type RunOptions, resolveSettings } from './bench-options.js'
import {
  type BenchResult,
  type CpuFigures,
  type CrossCoreFigures,
  DIRECT,
  type LatencyFigures,
  type MemoryFigures,
  type PercentilePoint,
  PROXY,
  type RateWithinBound,
  type ReuseFigures,
  type StallFigures,
  type StallLevel,
  type TargetFigures,
  type TargetInfo,
  type ThroughputLevel,
  type TimelinePhase,
  type TimelineSample,
  type TtfeFigures,
} from './bench-result.js'
import { readCpuIdle } from './cpu-idle.js'
import { type RoundTripSummary, runRoundTripClient } from './cross-core.js'
import { runClosedLoop } from './load-generator.js'
import {
  DEFAULT_PROXY_ENTRY,
  ECHO_MAIN,
  type EmulatorProcess,
  type ManagedProcess,
  StartupError,
  startCommandProcess,
  startEmulatorProcess,
  startProxyProcess,
} from './managed-process.js'
import { messageRequest, probeRequest } from './message-request.js'
import { type Pinning, pinPrefix, planPinning } from './pinning.js'
import { clockTicksPerSecond, createProcessProbe, type ProcessProbe } from './process-probe.js'
import type { ProgressEvent } from './progress-event.js'
import { defaultReferencePresets, presetCommand } from './references/reference-presets.js'
import { median, round } from './round-statistics.js'
import { runStreamWave } from './stream-wave.js'
import type { UpstreamCounters } from './upstream-stats-hook.js'

const DISTRIBUTION_PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100]
const GENERATOR_SATURATED_PERCENT = 90
/** How long a target that was stopped runs before it is measured (its overdue timers fire). */
const SETTLE_MS = 300
const TIMELINE_EVERY_MS = 250
/** Marginal memory: slow streams (10 events a second each), 1 s to settle after the ramp, 0.5 s of RSS samples. */
const MARGINAL_PACE_MS = 100
/** Throughput at c ≥ 64: the warm-up goes on until no new upstream connection for this long (at most STEADY_MAX_MS more). */
const STEADY_EVERY_MS = 500
const STEADY_MAX_MS = 3_000
const MARGINAL_SETTLE_MS = 1000
const MARGINAL_SAMPLE_MS = 500

interface Target {
  info: TargetInfo
  probe: ProcessProbe | null
  process: ManagedProcess | null
}

interface LatencyRound {
  summary: LatencySummary
  histogram: LatencyHistogram
  completed: number
  errors: number
}

interface ThroughputRound {
  requestsPerSecond: number
  summary: LatencySummary
  completed: number
  errors: number
  cpuUs: number | null
  upstream: UpstreamCounters | null
  generatorCpuPercent: number
  /** The upstream process's CPU use over the window, % of one core; null when unknown. */
  upstreamCpuPercent: number | null
}

interface TtfeRound {
  firstByte: LatencySummary
  gaps: LatencySummary
  completed: number
  errors: number
  generatorCpuPercent: number
}

/** Per-target raw measurements; figures are derived from these (also after an interruption). */
interface Raw {
  /** By round index. */
  latency: Map<number, LatencyRound>
  /** By concurrency, then round index. */
  throughput: Map<number, Map<number, ThroughputRound>>
  /** By round index. */
  ttfe: Map<number, TtfeRound>
  stall: StallLevel[]
  memory: MemoryFigures | null
  errors: string[]
}

function percent(cpuUs: number, windowMs: number): number {
  return windowMs > 0 ? round((cpuUs / 1000 / windowMs) * 100, 1) : 0
}

function counterDelta(before: UpstreamCounters | null, after: UpstreamCounters | null): UpstreamCounters | null {
  if (before === null || after === null) return null
  return { connections: after.connections - before.connections, requests: after.requests - before.requests }
}

function required(value: number | null): number {
  return value ?? Number.NaN
}

class BenchRun {
  readonly #options: RunOptions
  readonly #settings: BenchSettings
  readonly #signal: AbortSignal | undefined
  readonly #started = performance.now()
  readonly #startedAt = new Date()
  readonly #notes: string[] = []
  readonly #targets: Target[] = []
  readonly #raw = new Map<string, Raw>()
  readonly #samples: TimelineSample[] = []
  readonly #phases: TimelinePhase[] = []
  readonly #owned: ManagedProcess[] = []
  #emulator: EmulatorProcess | null = null
  /** The echo server on the proxies' CPU, for the cross-core round trip; null when not measured. */
  #echo: ManagedProcess | null = null
  /** Cross-core round trips by latency round. */
  readonly #crossCore = new Map<number, RoundTripSummary>()
  #pinning!: Pinning
  #directory = ''
  #sampler: NodeJS.Timeout | undefined
  #generatorMaxCpuPercent = 0
  #doneEstimateMs = 0
  #totalEstimateMs = 0
  #streamOverheadEvents = 6

  constructor(options: RunOptions) {
    this.#options = options
    this.#settings = resolveSettings(options)
    this.#signal = options.signal
  }

  get #aborted(): boolean {
    return this.#signal?.aborted ?? false
  }

  #emit(event: ProgressEvent): void {
    this.#options.onProgress?.(event)
  }

  #note(message: string): void {
    this.#notes.push(message)
    this.#emit({ type: 'note', message })
  }

  #elapsed(): number {
    return performance.now() - this.#started
  }

  async #step<T>(phase: string, label: string, estimateMs: number, work: () => Promise<T>): Promise<T> {
    this.#emit({ type: 'step', phase, label, doneEstimateMs: this.#doneEstimateMs, totalEstimateMs: this.#totalEstimateMs, elapsedMs: this.#elapsed() })
    try {
      return await work()
    } finally {
      this.#doneEstimateMs += estimateMs
    }
  }

  #phase(label: string): void {
    this.#phases.push({ atMs: Math.round(this.#elapsed()), label })
  }

  #generator(cpuPercent: number, what: string): void {
    if (cpuPercent > this.#generatorMaxCpuPercent) this.#generatorMaxCpuPercent = cpuPercent
    if (cpuPercent >= GENERATOR_SATURATED_PERCENT) {
      const message = `load generator near saturation (${cpuPercent}% of a core) during ${what}: that figure may be limited by the load side`
      if (!this.#notes.includes(message)) this.#note(message)
    }
  }

  /**
   * The generator and the upstream share one core: when a proxy's window used most of it, the
   * proxy was not the limit and its throughput figure says so. (Direct is always load-bound.)
   */
  #loadSide(generatorPercent: number, upstreamPercent: number | null, kind: TargetInfo['kind'], what: string): void {
    if (kind === 'direct' || upstreamPercent === null || this.#pinning.loadCpus === null || this.#pinning.loadCpus !== this.#pinning.upstreamCpus) return
    const total = generatorPercent + upstreamPercent
    if (total >= GENERATOR_SATURATED_PERCENT) {
      const message = `load side near saturation (generator + upstream ≥ ${GENERATOR_SATURATED_PERCENT}% of their core) during ${what}: that throughput is bounded by the load side, not the proxy (see the CPU rows of its table)`
      if (!this.#notes.includes(message)) this.#note(message)
    }
  }

  /**
   * Only `target` runs on the proxies' core: every other proxy is stopped (SIGSTOP) until its
   * turn, so an idle process's timers and garbage collection (V8's memory reducer runs a full
   * collection a few seconds after a busy phase) never land in another target's measurement.
   * A target that was stopped gets `SETTLE_MS` to catch up on its overdue timers first.
   * The upstream (direct) is never stopped.
   */
  async #focus(target: Target): Promise<void> {
    let resumed = false
    for (const other of this.#targets) {
      if (other.process === null || other.info.kind === 'direct') continue
      if (other === target) resumed = other.process.resume()
      else other.process.pause()
    }
    if (resumed) await delay(SETTLE_MS)
  }

  /** Targets still measured, direct first. */
  #active(): Target[] {
    return this.#targets.filter((target) => {
      if (target.info.failure !== null) return false
      if (target.process?.exited != null) {
        target.info.failure = `process exited (${target.process.exited}) during the run${target.process.stderrTail() ? `: ${target.process.stderrTail().slice(-500)}` : ''}`
        this.#note(`${target.info.name}: ${target.info.failure}`)
        return false
      }
      return true
    })
  }

  #rawOf(name: string): Raw {
    let raw = this.#raw.get(name)
    if (raw === undefined) {
      raw = { latency: new Map(), throughput: new Map(), ttfe: new Map(), stall: [], memory: null, errors: [] }
      this.#raw.set(name, raw)
    }
    return raw
  }

  #error(target: Target, message: string | null): void {
    if (message === null) return
    const errors = this.#rawOf(target.info.name).errors
    if (errors.length < 5 && !errors.includes(message)) errors.push(message)
  }

  async #upstreamStats(): Promise<UpstreamCounters | null> {
    if (this.#emulator === null || this.#emulator.exited !== null) return null
    try {
      return await this.#emulator.stats()
    } catch {
      return null
    }
  }

  // ---- start-up ---------------------------------------------------------------------------

  #addTarget(name: string, kind: TargetInfo['kind'], process: ManagedProcess | null, url: string, extra: { command?: string, pid?: number | null, cpus: string | null }): Target {
    const pid = process?.pid ?? extra.pid ?? null
    const target: Target = {
      info: { name, kind, url, command: extra.command ?? null, pid, cpus: extra.cpus, startupMs: process?.startupMs ?? null, failure: null },
      probe: process?.probe ?? (pid === null ? null : createProcessProbe(pid)),
      process,
    }
    target.probe?.refresh()
    this.#targets.push(target)
    return target
  }

  async #start(): Promise<void> {
    const options = this.#options
    this.#pinning = planPinning(options.pin ?? true, options.pinLoadGenerator ?? false)
    if (this.#pinning.note !== '') this.#note(`pinning: ${this.#pinning.note}`)
    this.#directory = mkdtempSync(join(tmpdir(), 'apt-bench-'))
    const proxyPrefix = pinPrefix(this.#pinning.proxyCpus)
    let upstreamUrl: string | null
    this.#phase('start-up')
    if (options.target === undefined) {
      this.#emit({ type: 'step', phase: 'startup', label: 'starting emulator and proxy', doneEstimateMs: 0, totalEstimateMs: 0, elapsedMs: this.#elapsed() })
      const emulator = await startEmulatorProcess(pinPrefix(this.#pinning.upstreamCpus), this.#settings.emulator, this.#signal)
      this.#emulator = emulator
      this.#owned.push(emulator)
      upstreamUrl = emulator.url
      this.#addTarget(DIRECT, 'direct', emulator, emulator.url, { cpus: this.#pinning.upstreamCpus })
      const proxy = await startProxyProcess(
        proxyPrefix,
        { entry: options.proxyEntry ?? DEFAULT_PROXY_ENTRY, upstreamUrl: emulator.url, env: options.proxyEnv ?? {}, logFile: join(this.#directory, 'proxy.log') },
        this.#signal,
      )
      this.#owned.push(proxy)
      this.#addTarget(PROXY, 'proxy', proxy, proxy.url, { cpus: this.#pinning.proxyCpus })
      await this.#startEcho(proxyPrefix)
    } else {
      upstreamUrl = options.upstream ?? null
      if (upstreamUrl !== null) this.#addTarget(DIRECT, 'direct', null, upstreamUrl, { cpus: null })
      else this.#note('no --upstream given: "direct" is not measured, so no ratio or added latency can be computed')
      this.#addTarget(PROXY, 'proxy', null, options.target, { pid: options.targetPid ?? null, cpus: null })
      if (options.targetPid === undefined) this.#note('--target without --target-pid: the proxy\'s CPU time and memory are not measured')
      this.#note('--target: connection reuse needs the emulator this tool starts, so it is not measured')
    }

    const compare: CompareTarget[] = [...(options.compare ?? [])]
    const references = options.references ?? (!this.#settings.quick && options.target === undefined)
    if (references) {
      for (const preset of defaultReferencePresets()) {
        if (!compare.some((entry) => 'preset' in entry && entry.preset === preset)) compare.push({ preset })
      }
    }
    for (const entry of compare) {
      if (this.#aborted) break
      const name = entry.name ?? ('preset' in entry ? entry.preset : 'compare')
      if (this.#targets.some((target) => target.info.name === name)) throw new TypeError(`two targets are named '${name}'`)
      const command = 'preset' in entry ? presetCommand(entry.preset, this.#directory) : entry.command
      if (upstreamUrl === null) {
        this.#note(`${name}: skipped, a --compare target needs an upstream (--upstream with --target)`)
        continue
      }
      this.#emit({ type: 'step', phase: 'startup', label: `starting ${name}`, doneEstimateMs: 0, totalEstimateMs: 0, elapsedMs: this.#elapsed() })
      try {
        const process = await startCommandProcess(proxyPrefix, { name, command, upstreamUrl, directory: this.#directory }, this.#signal)
        this.#owned.push(process)
        this.#addTarget(name, 'compare', process, process.url, { command, cpus: this.#pinning.proxyCpus })
      } catch (error) {
        if (!(error instanceof StartupError)) throw error
        this.#note(`${name}: could not start: ${error.message}`)
        const info: TargetInfo = { name, kind: 'compare', url: '', command, pid: null, cpus: null, startupMs: null, failure: error.message }
        this.#targets.push({ info, probe: null, process: null })
      }
    }

    // Every target must answer a request and a stream before it is measured.
    for (const target of this.#active()) {
      try {
        const plain = await probeRequest(target.info.url, messageRequest({ stream: false }))
        const stream = await probeRequest(target.info.url, messageRequest({ stream: true, deltas: 1 }))
        if (plain.status !== 200 || stream.status !== 200) throw new Error(`answered HTTP ${plain.status} / ${stream.status} to a test request`)
        if (target.info.kind === 'direct') this.#streamOverheadEvents = stream.events - 1
      } catch (error) {
        const message = `does not work: ${(error as Error).message}`
        if (target.info.kind !== 'compare') throw new StartupError(`${target.info.name} ${message}`)
        target.info.failure = message
        this.#note(`${target.info.name}: ${message}`)
      }
    }
    for (const target of this.#targets) target.probe?.refresh()
  }

  // ---- the plan ---------------------------------------------------------------------------

  #runs(kind: 'latency' | 'streaming' | 'concurrent'): boolean {
    return this.#settings.testType === 'all' || this.#settings.testType === kind
  }

  #plan(): void {
    const s = this.#settings
    const count = this.#active().length
    let total = count * (s.quick ? 500 : 1000)
    if (this.#runs('latency')) total += s.latencyRounds * count * ((s.latencyRequests + s.latencyWarmupRequests) * 0.6 + 50)
    if (this.#echo !== null) total += s.latencyRounds * (s.latencyRequests * 0.2 + 50)
    if (this.#runs('concurrent')) {
      for (const level of s.concurrencyLevels) total += s.rounds * count * ((level >= 64 ? 3 * s.warmupMs + STEADY_EVERY_MS : s.warmupMs) + s.durationMs + 150)
    }
    if (this.#runs('streaming')) {
      total += this.#active().filter((target) => target.info.kind !== 'direct' && target.probe !== null).length * this.#memoryEstimateMs()
      total += s.ttfeRounds * count * (s.warmupMs + s.ttfeDurationMs + s.ttfeEvents * s.streamPaceMs + 150)
      total += s.streamLevels.length * count * this.#waveEstimateMs()
    }
    this.#totalEstimateMs = total
  }

  #memoryEstimateMs(): number {
    const settleMs = this.#settings.streamRampMs + MARGINAL_SETTLE_MS
    return 1000 + this.#waveEstimateMs() + 3 * settleMs + 2 * MARGINAL_SAMPLE_MS + 1000
  }

  #waveEstimateMs(): number {
    const s = this.#settings
    return s.streamRampMs + s.streamEvents * s.streamPaceMs + 400
  }

  // ---- phases -----------------------------------------------------------------------------

  async #warmUp(): Promise<void> {
    const request = messageRequest({ stream: false })
    const ms = this.#settings.quick ? 500 : 1000
    for (const target of this.#active()) {
      if (this.#aborted) return
      await this.#step('warm-up', `warming up ${target.info.name}`, ms, async () => {
        await this.#focus(target)
        const result = await runClosedLoop({ url: target.info.url, concurrency: 16, request, streaming: false, warmup: { ms }, measure: { requests: 1 }, signal: this.#signal })
        this.#error(target, result.firstError)
      })
    }
  }

  /**
   * RSS per open stream, measured first, on processes that have only seen a
   * little traffic: later phases leave heap headroom that would absorb the
   * streams without any RSS growth. Direct (the emulator) is not measured.
   */
  async #memory(): Promise<void> {
    const s = this.#settings
    const streams = s.memoryStreams
    const request = messageRequest({ stream: true, deltas: Math.max(1, s.streamEvents - this.#streamOverheadEvents), paceMs: s.streamPaceMs })
    const shortStream = messageRequest({ stream: true, deltas: 2, paceMs: s.streamPaceMs })
    this.#phase(`memory, ${streams} open streams`)
    for (const target of this.#active()) {
      const probe = target.probe
      if (this.#aborted) return
      if (target.info.kind === 'direct' || probe === null) continue
      await this.#step('memory', `${target.info.name} RSS with ${streams} open streams`, this.#memoryEstimateMs(), async () => {
        await this.#focus(target)
        // Lazy module loading and first compilations are not memory per stream: a little traffic first.
        const warm = await runClosedLoop({ url: target.info.url, concurrency: 4, request: messageRequest({ stream: false }), streaming: false, warmup: { requests: 200 }, measure: { requests: 1 }, signal: this.#signal })
        this.#error(target, warm.firstError)
        await runStreamWave({ url: target.info.url, streams: 8, request: shortStream, expectedEvents: 1, stallLimitMs: 60_000, rampMs: 0, signal: this.#signal })
        await delay(300)
        probe.refresh()
        const idle = probe.rssKb()
        let peak = idle
        const wave = await runStreamWave({
          url: target.info.url,
          streams,
          request,
          expectedEvents: s.streamEvents,
          stallLimitMs: s.streamPaceMs + s.stallMarginMs,
          rampMs: s.streamRampMs,
          signal: this.#signal,
          onSample: () => {
            const rss = probe.rssKb()
            if (rss !== null && (peak === null || rss > peak)) peak = rss
          },
        })
        if (wave.interrupted || idle === null || peak === null) return
        this.#error(target, wave.firstError)
        const figures: MemoryFigures = { streams, idleRssKb: idle, peakRssKb: peak, kbPerStream: round((peak - idle) / streams, 2) }
        this.#rawOf(target.info.name).memory = figures
        const marginal = await this.#marginalMemory(target.info.url, probe, streams)
        if (marginal !== null) figures.marginalKbPerStream = marginal
      })
    }
  }

  /**
   * RSS per stream once loaded: `streams` slow streams are opened and held, RSS
   * is read, then `streams` more are opened beside them and RSS is read again.
   * Slow pacing keeps the load side's event rate far below what it sustains.
   */
  async #marginalMemory(url: string, probe: ProcessProbe, streams: number): Promise<number | null> {
    const s = this.#settings
    const settleMs = s.streamRampMs + MARGINAL_SETTLE_MS
    const events = Math.ceil((2 * settleMs + 2 * MARGINAL_SAMPLE_MS + 1000) / MARGINAL_PACE_MS)
    const request = messageRequest({ stream: true, deltas: Math.max(1, events - this.#streamOverheadEvents), paceMs: MARGINAL_PACE_MS })
    const wave = () => runStreamWave({ url, streams, request, expectedEvents: events, stallLimitMs: 60_000, rampMs: s.streamRampMs, signal: this.#signal })
    const highest = async (): Promise<number | null> => {
      let top: number | null = null
      for (let elapsed = 0; elapsed < MARGINAL_SAMPLE_MS && !this.#aborted; elapsed += 50) {
        probe.refresh()
        const rss = probe.rssKb()
        if (rss !== null && (top === null || rss > top)) top = rss
        await delay(50)
      }
      return top
    }
    const first = wave()
    await delay(settleMs)
    const one = await highest()
    const second = wave()
    await delay(settleMs)
    const two = await highest()
    const [a, b] = await Promise.all([first, second])
    if (a.interrupted || b.interrupted || a.failed + b.failed > 0 || one === null || two === null) return null
    return round(Math.max(0, two - one) / streams, 2)
  }

  /** The echo server for the cross-core round trip, when the proxies and the load side have CPUs of their own. */
  async #startEcho(proxyPrefix: string[]): Promise<void> {
    // The load side's CPU is the upstream's (the CLI pins its load generator there too).
    const { proxyCpus, upstreamCpus } = this.#pinning
    if (!this.#runs('latency') || proxyCpus === null || upstreamCpus === null || proxyCpus === upstreamCpus) return
    try {
      const echo = await startCommandProcess(proxyPrefix, { name: 'cross-core echo', command: `exec "${process.execPath}" "${ECHO_MAIN}"`, upstreamUrl: '', directory: this.#directory }, this.#signal)
      this.#owned.push(echo)
      this.#echo = echo
    } catch (error) {
      if (!(error instanceof StartupError)) throw error
      this.#note(`cross-core round trip: not measured, the echo server did not start: ${error.message}`)
    }
  }

  /** One round of the cross-core round trip, every proxy stopped (their CPU idle, as between requests at c=1). */
  async #crossCoreRound(roundIndex: number): Promise<void> {
    const echo = this.#echo
    if (echo === null || echo.exited !== null) return
    const s = this.#settings
    await this.#step('latency', `cross-core round trip round ${roundIndex + 1}/${s.latencyRounds}`, s.latencyRequests * 0.2 + 50, async () => {
      for (const target of this.#targets) if (target.process !== null && target.info.kind !== 'direct') target.process.pause()
      const port = Number(new URL(echo.url).port)
      try {
        this.#crossCore.set(roundIndex, await runRoundTripClient(pinPrefix(this.#pinning.upstreamCpus), ECHO_MAIN, { port, warmup: s.latencyWarmupRequests, count: s.latencyRequests, signal: this.#signal }))
      } catch (error) {
        if (!this.#aborted) this.#note(`cross-core round trip, round ${roundIndex + 1}: not measured (${(error as Error).message})`)
      }
    })
  }

  #crossCoreFigures(): CrossCoreFigures | null {
    if (this.#crossCore.size === 0) return null
    const rounds = [...this.#crossCore.values()]
    const p50Us = median(rounds.map((summary) => summary.p50Us))
    const p99Us = median(rounds.map((summary) => summary.p99Us))
    if (p50Us === null || p99Us === null) return null
    return { rounds: rounds.length, fromCpus: this.#pinning.upstreamCpus, toCpus: this.#pinning.proxyCpus, p50Us: Math.round(p50Us), p99Us: Math.round(p99Us) }
  }

  async #latency(): Promise<void> {
    const s = this.#settings
    const request = messageRequest({ stream: false })
    this.#phase('latency c=1')
    for (let roundIndex = 0; roundIndex < s.latencyRounds && !this.#aborted; roundIndex++) {
      await this.#crossCoreRound(roundIndex)
      for (const target of this.#active()) {
        if (this.#aborted) return
        const estimate = (s.latencyRequests + s.latencyWarmupRequests) * 0.6 + 50
        await this.#step('latency', `${target.info.name} c=1 round ${roundIndex + 1}/${s.latencyRounds}`, estimate, async () => {
          await this.#focus(target)
          const result = await runClosedLoop({
            url: target.info.url,
            concurrency: 1,
            request,
            streaming: false,
            warmup: { requests: s.latencyWarmupRequests },
            measure: { requests: s.latencyRequests },
            signal: this.#signal,
          })
          if (result.interrupted && result.completed === 0) return
          this.#error(target, result.firstError)
          this.#rawOf(target.info.name).latency.set(roundIndex, { summary: result.latency.summary(), histogram: result.latency, completed: result.completed, errors: result.errors })
          this.#generator(percent(result.generatorCpuUs, result.windowMs), `latency (${target.info.name})`)
        })
      }
    }
  }

  async #throughput(): Promise<void> {
    const s = this.#settings
    const request = messageRequest({ stream: false })
    for (const concurrency of s.concurrencyLevels) {
      this.#phase(`throughput c=${concurrency}`)
      for (let roundIndex = 0; roundIndex < s.rounds && !this.#aborted; roundIndex++) {
        for (const target of this.#active()) {
          if (this.#aborted) return
          // At high concurrency the warm-up runs three times longer, and then on until the upstream
          // has seen no new connection for half a second (at most 3 s more): a saturated proxy holds
          // fewer requests upstream than the clients send, and its pool grows to the peak of that
          // number, a little more after each burst (a GC pause), so it can still be growing when a
          // fixed warm-up ends. The reuse figure is meant for the steady state, not that growth.
          const high = concurrency >= 64
          const warmupMs = high ? s.warmupMs * 3 : s.warmupMs
          let seenConnections: number | null = null
          const steady = async (): Promise<boolean> => {
            const connections = (await this.#upstreamStats())?.connections ?? null
            const unchanged = connections === null || connections === seenConnections
            seenConnections = connections
            return unchanged
          }
          await this.#step('throughput', `${target.info.name} c=${concurrency} round ${roundIndex + 1}/${s.rounds}`, warmupMs + (high ? STEADY_EVERY_MS : 0) + s.durationMs + 150, async () => {
            await this.#focus(target)
            let cpuStart: number | null = null
            let cpuEnd: number | null = null
            let upstreamStart: UpstreamCounters | null = null
            let upstreamEnd: UpstreamCounters | null = null
            let upstreamTicksStart: number | null = null
            let upstreamTicksEnd: number | null = null
            const probe = target.probe
            const upstreamProbe = this.#emulator?.probe ?? null
            const result = await runClosedLoop({
              url: target.info.url,
              concurrency,
              request,
              streaming: false,
              // Every connection has served before the window opens, so reuse counts the steady state.
              warmup: { ms: warmupMs, everyWorker: true, ...(high ? { steady, steadyEveryMs: STEADY_EVERY_MS, steadyMaxMs: STEADY_MAX_MS } : {}) },
              measure: { ms: s.durationMs },
              signal: this.#signal,
              atWindowStart: async () => {
                cpuStart = probe?.cpuTicks() ?? null
                upstreamTicksStart = upstreamProbe?.cpuTicks() ?? null
                upstreamStart = await this.#upstreamStats()
              },
              atWindowEnd: async () => {
                cpuEnd = probe?.cpuTicks() ?? null
                upstreamTicksEnd = upstreamProbe?.cpuTicks() ?? null
                upstreamEnd = await this.#upstreamStats()
              },
            })
            if (result.interrupted) return
            this.#error(target, result.firstError)
            const ticks = cpuStart !== null && cpuEnd !== null ? (cpuEnd as number) - (cpuStart as number) : null
            const cpuUs = ticks !== null && ticks >= 0 ? (ticks * 1e6) / clockTicksPerSecond() : null
            const generatorCpuPercent = percent(result.generatorCpuUs, result.windowMs)
            this.#generator(generatorCpuPercent, `throughput c=${concurrency} (${target.info.name})`)
            const upstreamTicks = upstreamTicksStart !== null && upstreamTicksEnd !== null ? (upstreamTicksEnd as number) - (upstreamTicksStart as number) : null
            const upstreamCpuPercent = upstreamTicks !== null && upstreamTicks >= 0 ? percent((upstreamTicks * 1e6) / clockTicksPerSecond(), result.windowMs) : null
            this.#loadSide(generatorCpuPercent, upstreamCpuPercent, target.info.kind, `throughput c=${concurrency} (${target.info.name})`)
            const levels = this.#rawOf(target.info.name).throughput
            const rounds = levels.get(concurrency) ?? new Map<number, ThroughputRound>()
            levels.set(concurrency, rounds)
            rounds.set(roundIndex, {
              requestsPerSecond: (result.completed / result.windowMs) * 1000,
              summary: result.latency.summary(),
              completed: result.completed,
              errors: result.errors,
              cpuUs,
              upstream: counterDelta(upstreamStart, upstreamEnd),
              generatorCpuPercent,
              upstreamCpuPercent,
            })
          })
        }
      }
    }
  }

  async #ttfe(): Promise<void> {
    const s = this.#settings
    const request = messageRequest({ stream: true, deltas: Math.max(1, s.ttfeEvents - this.#streamOverheadEvents), paceMs: s.streamPaceMs })
    this.#phase(`time to first event, ${s.ttfeStreams} streams`)
    for (let roundIndex = 0; roundIndex < s.ttfeRounds && !this.#aborted; roundIndex++) {
      for (const target of this.#active()) {
        if (this.#aborted) return
        const estimate = s.warmupMs + s.ttfeDurationMs + s.ttfeEvents * s.streamPaceMs + 150
        await this.#step('streaming', `${target.info.name} ${s.ttfeStreams} streams round ${roundIndex + 1}/${s.ttfeRounds}`, estimate, async () => {
          await this.#focus(target)
          const result = await runClosedLoop({
            url: target.info.url,
            concurrency: s.ttfeStreams,
            request,
            streaming: true,
            warmup: { ms: s.warmupMs, everyWorker: true },
            measure: { ms: s.ttfeDurationMs },
            signal: this.#signal,
          })
          if (result.interrupted) return
          this.#error(target, result.firstError)
          const generatorCpuPercent = percent(result.generatorCpuUs, result.windowMs)
          this.#generator(generatorCpuPercent, `time to first event (${target.info.name})`)
          this.#rawOf(target.info.name).ttfe.set(roundIndex, {
            firstByte: (result.firstByte as LatencyHistogram).summary(),
            gaps: (result.gaps as LatencyHistogram).summary(),
            completed: result.completed,
            errors: result.errors,
            generatorCpuPercent,
          })
        })
      }
    }
  }

  async #stalls(): Promise<void> {
    const s = this.#settings
    const request: Dispatcher.DispatchOptions = messageRequest({ stream: true, deltas: Math.max(1, s.streamEvents - this.#streamOverheadEvents), paceMs: s.streamPaceMs })
    const limitMs = s.streamPaceMs + s.stallMarginMs
    const stepping = new Set(this.#active().map((target) => target.info.name))
    let loadSideLimit: number | null = null
    for (const [levelIndex, streams] of s.streamLevels.entries()) {
      this.#phase(`paced streams x${streams}`)
      for (const target of this.#active()) {
        if (this.#aborted) return
        if (!stepping.has(target.info.name)) continue
        const estimate = this.#waveEstimateMs()
        const held = await this.#step('streaming', `${target.info.name} ${streams} paced streams`, estimate, async () => {
          await this.#focus(target)
          const level: StallLevel = {
            streams, held: false, attempts: 0, clean: 0, stalled: 0, failed: 0, firstError: null, maxGapMs: 0,
            p99FirstEventMs: 0, maxFirstEventMs: 0, idleRssKb: null, peakRssKb: null, kbPerStream: null, cpuUsPerEvent: null, generatorCpuPercent: 0,
          }
          const probe = target.probe
          while (level.attempts < 2 && !level.held && !this.#aborted) {
            // Let the previous wave's sockets close before reading the idle RSS.
            await delay(300)
            probe?.refresh()
            const idle = probe?.rssKb() ?? null
            let peak = idle
            const cpuStart = probe?.cpuTicks() ?? null
            const wave = await runStreamWave({
              url: target.info.url,
              streams,
              request,
              expectedEvents: s.streamEvents,
              stallLimitMs: limitMs,
              rampMs: s.streamRampMs,
              signal: this.#signal,
              ...(probe === null
                ? {}
                : {
                    onSample: () => {
                      const rss = probe.rssKb()
                      if (rss !== null && (peak === null || rss > peak)) peak = rss
                    },
                  }),
            })
            if (wave.interrupted) return false
            const cpuEnd = probe?.cpuTicks() ?? null
            const events = (wave.clean + wave.stalled) * s.streamEvents
            level.cpuUsPerEvent = cpuStart === null || cpuEnd === null || events === 0
              ? null
              : round(((cpuEnd - cpuStart) * 1e6) / clockTicksPerSecond() / events, 1)
            level.attempts++
            level.held = wave.clean === streams
            level.clean = wave.clean
            level.stalled = wave.stalled
            level.failed = wave.failed
            level.firstError = wave.firstError
            level.maxGapMs = round(wave.maxGapMs)
            level.p99FirstEventMs = round(wave.p99FirstEventMs)
            level.maxFirstEventMs = round(wave.maxFirstEventMs)
            level.idleRssKb = idle
            level.peakRssKb = peak
            level.kbPerStream = idle !== null && peak !== null ? round((peak - idle) / streams, 2) : null
            level.generatorCpuPercent = percent(wave.generatorCpuUs, wave.wallMs)
            this.#generator(level.generatorCpuPercent, `${streams} paced streams (${target.info.name})`)
          }
          if (level.attempts > 0) this.#rawOf(target.info.name).stall.push(level)
          return level.held
        })
        if (!held) {
          stepping.delete(target.info.name)
          // Skip the remaining levels of this target in the ETA.
          this.#totalEstimateMs -= (s.streamLevels.length - levelIndex - 1) * estimate
          if (target.info.kind === 'direct') loadSideLimit = streams
        }
      }
      // Proxies go on while one of them holds, even past the load side's limit (the report says so).
      if ([...stepping].every((name) => name === DIRECT)) break
    }
    if (loadSideLimit !== null) {
      this.#note(`paced streams: the load side itself (direct) did not hold ${loadSideLimit} streams; a proxy's result at or above that level is limited by the load side, not by the proxy`)
    }
  }

  // ---- figures ----------------------------------------------------------------------------

  /** Median over rounds of (target − direct) × 1000, pairing rounds by index (µs). */
  #paired<Round>(own: Map<number, Round>, direct: Map<number, Round> | undefined, pick: (round: Round) => number | null): number | null {
    if (direct === undefined) return null
    const differences: (number | null)[] = []
    for (const [index, mine] of own) {
      const base = direct.get(index)
      const a = pick(mine)
      const b = base === undefined ? null : pick(base)
      differences.push(a === null || b === null ? null : (a - b) * 1000)
    }
    const value = median(differences)
    return value === null ? null : Math.round(value)
  }

  #latencyFigures(name: string): LatencyFigures | undefined {
    const own = this.#raw.get(name)?.latency
    if (own === undefined || own.size === 0) return undefined
    const measured = [...own.values()]
    const direct = name === DIRECT ? undefined : this.#raw.get(DIRECT)?.latency
    const merged = createLatencyHistogram()
    for (const entry of measured) merged.merge(entry.histogram)
    const distribution: PercentilePoint[] = merged.count === 0
      ? []
      : DISTRIBUTION_PERCENTILES.map((percentile) => ({ percentile, ms: round(merged.percentile(percentile) ?? 0) }))
    const completed = measured.reduce((sum, entry) => sum + entry.completed, 0)
    const errors = measured.reduce((sum, entry) => sum + entry.errors, 0)
    return {
      rounds: measured.length,
      requests: completed + errors,
      errors,
      meanMs: round(required(median(measured.map((entry) => entry.summary.mean)))),
      p50Ms: round(required(median(measured.map((entry) => entry.summary.p50)))),
      p95Ms: round(required(median(measured.map((entry) => entry.summary.p95)))),
      p99Ms: round(required(median(measured.map((entry) => entry.summary.p99)))),
      addedP50Us: this.#paired(own, direct, (entry) => entry.summary.p50),
      addedP99Us: this.#paired(own, direct, (entry) => entry.summary.p99),
      distribution,
    }
  }

  #throughputFigures(name: string): ThroughputLevel[] | undefined {
    const levels = this.#raw.get(name)?.throughput
    if (levels === undefined || levels.size === 0) return undefined
    const directLevels = name === DIRECT ? undefined : this.#raw.get(DIRECT)?.throughput
    const figures: ThroughputLevel[] = []
    for (const [concurrency, own] of [...levels.entries()].sort((a, b) => a[0] - b[0])) {
      const measured = [...own.values()]
      if (measured.length === 0) continue
      const direct = directLevels?.get(concurrency)
      const ratios: (number | null)[] = []
      if (direct !== undefined) {
        for (const [index, entry] of own) {
          const base = direct.get(index)
          ratios.push(base === undefined || base.requestsPerSecond === 0 ? null : entry.requestsPerSecond / base.requestsPerSecond)
        }
      }
      const completed = measured.reduce((sum, entry) => sum + entry.completed, 0)
      const errors = measured.reduce((sum, entry) => sum + entry.errors, 0)
      let upstream: UpstreamCounters | null = { connections: 0, requests: 0 }
      for (const entry of measured) {
        if (entry.upstream === null || upstream === null) upstream = null
        else upstream = { connections: upstream.connections + entry.upstream.connections, requests: upstream.requests + entry.upstream.requests }
      }
      const ratio = median(ratios)
      const cpu = median(measured.map((entry) => (entry.cpuUs === null || entry.completed === 0 ? null : entry.cpuUs / entry.completed)))
      figures.push({
        concurrency,
        rounds: measured.length,
        requests: completed + errors,
        errors,
        errorRate: completed + errors === 0 ? 0 : round(errors / (completed + errors), 6),
        requestsPerSecond: Math.round(required(median(measured.map((entry) => entry.requestsPerSecond)))),
        meanMs: round(required(median(measured.map((entry) => entry.summary.mean)))),
        p50Ms: round(required(median(measured.map((entry) => entry.summary.p50)))),
        p95Ms: round(required(median(measured.map((entry) => entry.summary.p95)))),
        p99Ms: round(required(median(measured.map((entry) => entry.summary.p99)))),
        ratioToDirect: name === DIRECT || ratio === null ? null : round(ratio, 4),
        cpuUsPerRequest: cpu === null ? null : round(cpu, 1),
        upstreamConnections: upstream?.connections ?? null,
        upstreamRequests: upstream?.requests ?? null,
        reuse: upstream === null || upstream.requests === 0 ? null : round(1 - upstream.connections / upstream.requests, 6),
        generatorCpuPercent: Math.max(...measured.map((entry) => entry.generatorCpuPercent)),
        upstreamCpuPercent: measured.some((entry) => entry.upstreamCpuPercent === null) ? null : Math.max(...measured.map((entry) => entry.upstreamCpuPercent as number)),
      })
    }
    return figures.length === 0 ? undefined : figures
  }

  #ttfeFigures(name: string): TtfeFigures | undefined {
    const s = this.#settings
    const own = this.#raw.get(name)?.ttfe
    if (own === undefined || own.size === 0) return undefined
    const measured = [...own.values()]
    const direct = name === DIRECT ? undefined : this.#raw.get(DIRECT)?.ttfe
    return {
      streams: s.ttfeStreams,
      events: s.ttfeEvents,
      paceMs: s.streamPaceMs,
      rounds: measured.length,
      completed: measured.reduce((sum, entry) => sum + entry.completed, 0),
      errors: measured.reduce((sum, entry) => sum + entry.errors, 0),
      firstEventP50Ms: round(required(median(measured.map((entry) => entry.firstByte.p50)))),
      firstEventP99Ms: round(required(median(measured.map((entry) => entry.firstByte.p99)))),
      gapP50Ms: round(required(median(measured.map((entry) => entry.gaps.p50)))),
      gapP99Ms: round(required(median(measured.map((entry) => entry.gaps.p99)))),
      addedFirstEventP50Us: this.#paired(own, direct, (entry) => entry.firstByte.p50),
      addedFirstEventP99Us: this.#paired(own, direct, (entry) => entry.firstByte.p99),
      addedGapP50Us: this.#paired(own, direct, (entry) => entry.gaps.p50),
      addedGapP99Us: this.#paired(own, direct, (entry) => entry.gaps.p99),
      generatorCpuPercent: Math.max(...measured.map((entry) => entry.generatorCpuPercent)),
    }
  }

  #stallFigures(name: string): StallFigures | undefined {
    const s = this.#settings
    const levels = this.#raw.get(name)?.stall ?? []
    if (levels.length === 0) return undefined
    const maxHeld = (list: StallLevel[]): number => {
      let held = 0
      for (const level of list) {
        if (!level.held) break
        held = level.streams
      }
      return held
    }
    const own = maxHeld(levels)
    const directLevels = this.#raw.get(DIRECT)?.stall
    const direct = name === DIRECT || directLevels === undefined ? null : maxHeld(directLevels)
    return {
      events: s.streamEvents,
      paceMs: s.streamPaceMs,
      limitMs: s.streamPaceMs + s.stallMarginMs,
      levels,
      maxStreamsHeld: own,
      ratioToDirect: direct === null || direct === 0 ? null : round(own / direct, 4),
    }
  }

  #memoryFigures(name: string, stall: StallFigures | undefined): MemoryFigures | null {
    const dedicated = this.#raw.get(name)?.memory
    if (dedicated != null) return dedicated
    if (stall === undefined) return null
    const candidates = stall.levels.filter((level) => level.kbPerStream !== null)
    const chosen = candidates.find((level) => level.streams === this.#settings.memoryStreams)
      ?? candidates.filter((level) => level.streams <= this.#settings.memoryStreams).at(-1)
      ?? candidates[0]
    if (chosen === undefined || chosen.idleRssKb === null || chosen.peakRssKb === null || chosen.kbPerStream === null) return null
    return { streams: chosen.streams, idleRssKb: chosen.idleRssKb, peakRssKb: chosen.peakRssKb, kbPerStream: chosen.kbPerStream }
  }

  #figures(): Record<string, TargetFigures> {
    const figures: Record<string, TargetFigures> = {}
    const directThroughput = this.#throughputFigures(DIRECT)
    for (const target of this.#targets) {
      const name = target.info.name
      const entry: TargetFigures = {}
      const latency = this.#latencyFigures(name)
      if (latency !== undefined) entry.latency = latency
      const throughput = this.#throughputFigures(name)
      if (throughput !== undefined) {
        entry.throughput = throughput
        const top = throughput.at(-1) as ThroughputLevel
        const within = throughput.filter((level) => level.p99Ms <= this.#settings.p99BoundMs && level.errors === 0)
        const best = within.reduce<ThroughputLevel | undefined>((bestSoFar, level) => (bestSoFar === undefined || level.requestsPerSecond > bestSoFar.requestsPerSecond ? level : bestSoFar), undefined)
        entry.rateWithinP99Bound = best === undefined ? null : ({ p99BoundMs: this.#settings.p99BoundMs, requestsPerSecond: best.requestsPerSecond, concurrency: best.concurrency } satisfies RateWithinBound)
        entry.reuse = top.reuse === null || top.upstreamConnections === null || top.upstreamRequests === null
          ? null
          : ({ concurrency: top.concurrency, upstreamConnections: top.upstreamConnections, upstreamRequests: top.upstreamRequests, reuse: top.reuse } satisfies ReuseFigures)
        const upstreamCpu = directThroughput?.find((level) => level.concurrency === top.concurrency)?.cpuUsPerRequest ?? null
        entry.cpu = top.cpuUsPerRequest === null
          ? null
          : ({
              concurrency: top.concurrency,
              usPerRequest: top.cpuUsPerRequest,
              upstreamUsPerRequest: upstreamCpu,
              ratioToUpstream: upstreamCpu === null || upstreamCpu === 0 ? null : round(top.cpuUsPerRequest / upstreamCpu, 4),
            } satisfies CpuFigures)
      }
      const ttfe = this.#ttfeFigures(name)
      if (ttfe !== undefined) entry.ttfe = ttfe
      const stall = this.#stallFigures(name)
      if (stall !== undefined) entry.stall = stall
      const memory = this.#memoryFigures(name, stall)
      if (memory !== null || stall !== undefined) entry.memory = memory
      figures[name] = entry
    }
    return figures
  }

  // ---- the run ----------------------------------------------------------------------------

  #startSampler(): void {
    this.#sampler = setTimeout(() => {
      const rssKb: Record<string, number> = {}
      for (const target of this.#targets) {
        if (target.info.failure !== null) continue
        const rss = target.probe?.rssKb()
        if (rss != null) rssKb[target.info.name] = rss
      }
      this.#samples.push({ atMs: Math.round(this.#elapsed()), rssKb })
      this.#sampler?.refresh()
    }, TIMELINE_EVERY_MS)
  }

  async execute(): Promise<BenchResult> {
    let fatal: unknown
    try {
      await this.#start()
      this.#startSampler()
      this.#plan()
      if (this.#runs('streaming') && !this.#aborted) await this.#memory()
      await this.#warmUp()
      if (this.#runs('latency') && !this.#aborted) await this.#latency()
      if (this.#runs('concurrent') && !this.#aborted) await this.#throughput()
      if (this.#runs('streaming') && !this.#aborted) {
        await this.#ttfe()
        if (!this.#aborted) await this.#stalls()
      }
    } catch (error) {
      fatal = error
    } finally {
      clearTimeout(this.#sampler)
      await Promise.all(this.#owned.map((process) => process.close()))
      if (this.#directory !== '') rmSync(this.#directory, { recursive: true, force: true })
    }
    if (fatal !== undefined && !(this.#aborted && fatal instanceof StartupError)) throw fatal
    for (const target of this.#targets) {
      const errors = this.#raw.get(target.info.name)?.errors ?? []
      if (errors.length > 0) this.#note(`${target.info.name}: errors seen: ${errors.join('; ')}`)
    }
    this.#emit({ type: 'done', elapsedMs: this.#elapsed() })
    const cpuList = cpus()
    return {
      tool: '@apt/bench',
      version: 1,
      startedAt: this.#startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durationMs: Math.round(this.#elapsed()),
      interrupted: this.#aborted,
      selfContained: this.#options.target === undefined,
      settings: this.#settings,
      machine: {
        // os.cpus(): availableParallelism() shrinks once this process is pinned.
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model ?? 'unknown',
        nodeVersion: process.version,
        os: `${process.platform} ${release()}`,
        arch: process.arch,
        totalMemoryMb: Math.round(totalmem() / 2 ** 20),
        clockTicksPerSecond: clockTicksPerSecond(),
        pinning: this.#pinning ?? planPinning(false, false),
        cpuIdle: readCpuIdle(),
      },
      targets: this.#targets.map((target) => target.info),
      figures: this.#figures(),
      crossCore: this.#crossCoreFigures(),
      generatorMaxCpuPercent: this.#generatorMaxCpuPercent,
      timeline: { samples: this.#samples, phases: this.#phases },
      notes: this.#notes,
    }
  }
}

/**
 * Runs the benchmark: starts the emulator and the proxy (unless `target` is
 * given) and any `compare` proxies, measures each of them and the emulator
 * directly in interleaved rounds, and returns every figure. Child processes are
 * always stopped before it settles. With `signal` aborted it resolves with what
 * was measured so far (`interrupted: true`).
 */
export function run(options: RunOptions = {}): Promise<BenchResult> {
  return new BenchRun(options).execute()
}
