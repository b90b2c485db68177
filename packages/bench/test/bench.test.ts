import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BenchResult,
  compareWithBaseline,
  createBaseline,
  DEFAULT_TOLERANCES,
  describeCpuIdle,
  figureKind,
  formatReport,
  gateFigures,
  parseBaseline,
  readCpuIdle,
  renderHtmlReport,
  run,
  sanityCheck,
  type Tolerance,
} from '../src/index.js'

const ROOT = new URL('../../../', import.meta.url).pathname
const CLI = join(ROOT, 'packages/bench/dist/cli.js')
const PROXY_MAIN = join(ROOT, 'apps/proxy/dist/main.js')
const DELAY_HOOK = new URL('./fixtures/delay-requests.mjs', import.meta.url).href
const BASELINE = join(ROOT, 'packages/bench/baseline.json')

/** The apt proxy as a `--compare` command (it reads ANTHROPIC_UPSTREAM_URL; the bench gives UPSTREAM_URL and PORT). */
function proxyCommand(preload?: string): string {
  const imports = preload === undefined ? '' : `--import '${preload}' `
  return `ANTHROPIC_UPSTREAM_URL="$UPSTREAM_URL" HOST=127.0.0.1 APT_ENV_FILE=/nonexistent exec '${process.execPath}' ${imports}'${PROXY_MAIN}'`
}

/**
 * Wide slack for this test: quick-mode figures on a shared 2-core VM are noisy,
 * and the point is that an unchanged proxy passes while a 5 ms delay (tens of
 * times a loopback request) does not.
 */
const TEST_TOLERANCES: Record<string, Tolerance> = {
  ...Object.fromEntries(Object.keys(DEFAULT_TOLERANCES).map((kind) => [kind, { relative: 3 }])),
  throughput_ratio: { relative: 0.75 },
  // A quick run takes p99 at c=1 from a few hundred requests while the CLI's own quick run
  // competes for the CPU: one scheduling spike moves it 5-10x (seen once in CI-like conditions).
  // The slowed target is caught by its p50, so the tail only needs to tolerate that noise.
  added_latency_p99_per_crossing: { relative: 15 },
  upstream_reuse: { absolute: 0.05 },
  paced_streams_ratio: { relative: 1 },
  error_rate: { absolute: 0.01 },
}

let cli: Promise<{ stdout: string, stderr: string }> | undefined
let cliDirectory = ''

beforeAll(() => {
  // The benchmark spawns built files (emulator-main, the stats hook, the proxy, the references).
  execFileSync('npx', ['tsc', '-b'], { cwd: ROOT, stdio: 'inherit' })
  // The CLI's own quick run goes on while the library runs below: the checks are about the tool, not speed.
  cliDirectory = mkdtempSync(join(tmpdir(), 'apt-bench-test-'))
  cli = promisify(execFile)(process.execPath, [CLI, '--quick', '--output', join(cliDirectory, 'results.json')], { cwd: ROOT, maxBuffer: 16 * 2 ** 20 })
  // Keep an early failure for the CLI test instead of an unhandled rejection.
  cli.catch(() => undefined)
}, 120_000)

afterAll(() => {
  rmSync(cliDirectory, { recursive: true, force: true })
})

describe('run() in quick mode against the emulator', () => {
  let result: BenchResult

  beforeAll(async () => {
    result = await run({ quick: true })
  }, 120_000)

  it('measures every figure, with sane values', () => {
    expect(result.interrupted).toBe(false)
    expect(result.targets.map((target) => [target.name, target.failure])).toEqual([
      ['direct', null],
      ['proxy', null],
    ])
    const direct = result.figures.direct
    const proxy = result.figures.proxy
    expect(direct?.latency).toBeDefined()
    expect(proxy?.latency).toBeDefined()
    if (direct?.latency === undefined || proxy?.latency === undefined) return
    for (const figures of [direct.latency, proxy.latency]) {
      expect(figures.errors).toBe(0)
      for (const value of [figures.meanMs, figures.p50Ms, figures.p95Ms, figures.p99Ms]) {
        expect(Number.isFinite(value) && value > 0).toBe(true)
      }
      expect(figures.p50Ms).toBeLessThanOrEqual(figures.p99Ms)
    }
    // Direct is not slower than through a proxy, within (generous) noise.
    expect(direct.latency.p50Ms).toBeLessThanOrEqual(proxy.latency.p50Ms * 1.5)
    expect(Number.isFinite(proxy.latency.addedP50Us)).toBe(true)

    expect(proxy.throughput?.map((level) => level.concurrency)).toEqual([1, 128])
    for (const level of proxy.throughput ?? []) {
      expect(level.errors).toBe(0)
      expect(level.requestsPerSecond).toBeGreaterThan(0)
      expect(level.ratioToDirect).toBeGreaterThan(0)
      expect(level.cpuUsPerRequest).toBeGreaterThan(0)
    }
    expect(proxy.reuse?.concurrency).toBe(128)
    expect(proxy.reuse?.reuse).toBeGreaterThanOrEqual(0.9)
    expect(direct.reuse?.reuse).toBeGreaterThanOrEqual(0.9)
    expect(proxy.cpu?.usPerRequest).toBeGreaterThan(0)
    expect(proxy.cpu?.ratioToUpstream).toBeGreaterThan(0)

    expect(proxy.ttfe?.errors).toBe(0)
    expect(proxy.ttfe?.completed).toBeGreaterThan(0)
    expect(Number.isFinite(proxy.ttfe?.addedFirstEventP50Us)).toBe(true)
    expect(proxy.stall?.levels.length).toBeGreaterThan(0)
    expect(direct.stall?.levels.length).toBeGreaterThan(0)
    for (const level of [...(proxy.stall?.levels ?? []), ...(direct.stall?.levels ?? [])]) expect(level.failed).toBe(0)
    for (const level of proxy.stall?.levels ?? []) expect(level.cpuUsPerEvent).toBeGreaterThan(0)
    expect(proxy.memory?.streams).toBe(result.settings.memoryStreams)
    expect(proxy.memory?.kbPerStream).toBeGreaterThanOrEqual(0)
    expect(proxy.memory?.marginalKbPerStream).toBeGreaterThanOrEqual(0)
    expect(result.generatorMaxCpuPercent).toBeGreaterThan(0)
    expect(result.machine.cpus).toBeGreaterThan(0)
    // What sysfs says now about idle CPUs (nulls where it says nothing).
    expect(result.machine.cpuIdle).toEqual(readCpuIdle())
    // The machine's cross-core round trip, both ends pinned (proxies' CPU and the upstream's).
    if (result.machine.pinning.used) {
      expect(result.crossCore).toMatchObject({ rounds: result.settings.latencyRounds, fromCpus: result.machine.pinning.upstreamCpus, toCpus: result.machine.pinning.proxyCpus })
      expect(result.crossCore?.p50Us).toBeGreaterThan(0)
      expect(result.crossCore?.p99Us).toBeGreaterThanOrEqual(result.crossCore?.p50Us ?? Number.POSITIVE_INFINITY)
    }
    expect(sanityCheck(result).regressed).toBe(false)
  })

  it('reports in the seed\'s style and as an HTML page that needs no network', () => {
    const text = formatReport(result)
    for (const section of ['LATENCY BENCHMARK RESULTS', 'CONCURRENT LOAD RESULTS', 'STREAMING BENCHMARK RESULTS']) expect(text).toContain(section)
    if (result.crossCore != null) expect(text).toContain(`Cross-core round trip (a one-byte echo, CPU ${result.crossCore.fromCpus} → ${result.crossCore.toCpus}`)
    const idle = describeCpuIdle(result.machine.cpuIdle)
    if (idle !== null) expect(text).toContain(`Idle CPUs: ${idle}`)
    for (const row of ['Total requests', 'Error rate', 'Average (ms)', 'P50 (ms)', 'P95 (ms)', 'P99 (ms)', 'Requests/sec', 'Memory per stream']) expect(text).toContain(row)
    const html = renderHtmlReport(result)
    expect(html.match(/<svg /g)?.length).toBe(3)
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|@import|url\(/i)
  })
})

describe('the regression gate on measured results', () => {
  let result: BenchResult

  beforeAll(async () => {
    // Not beside the CLI's own quick run: its load made a whole round of the unchanged twin slow
    // (p50 9.4 times direct's against the proxy's 2.0, once in a full suite on a fresh clone).
    await cli?.catch(() => undefined)
    // The proxy, an unchanged second instance of it, and one slowed by 5 ms per request, rounds
    // interleaved; the median of five rounds, so one slow round decides nothing.
    result = await run({
      quick: true,
      testType: 'latency',
      rounds: 5,
      requests: 150,
      compare: [
        { name: 'twin', command: proxyCommand() },
        { name: 'slowed', command: proxyCommand(DELAY_HOOK) },
      ],
    })
  }, 240_000)

  it('sees the injected delay', () => {
    expect(result.targets.every((target) => target.failure === null)).toBe(true)
    expect(result.figures.slowed?.latency?.addedP50Us).toBeGreaterThan(4000)
  })

  it('passes the unchanged proxy and reports the slowed one as REGRESSED', () => {
    const baseline = createBaseline(result, { target: 'proxy', tolerances: TEST_TOLERANCES })
    expect(Object.keys(baseline.figures)).toEqual(expect.arrayContaining(['added_latency_p50_per_crossing', 'added_latency_p99_per_crossing', 'error_rate']))

    const unchanged = compareWithBaseline(baseline, gateFigures(result, 'twin'), { target: 'twin', complete: false })
    expect(unchanged.rows.filter((row) => row.status === 'REGRESSED' || row.status === 'MISSING').map((row) => `${row.key}: ${row.baseline} -> ${row.now} (limit ${row.limit})`)).toEqual([])
    expect(unchanged.regressed).toBe(false)

    const slowed = compareWithBaseline(baseline, gateFigures(result, 'slowed'), { target: 'slowed', complete: false })
    expect(slowed.regressed).toBe(true)
    expect(slowed.rows.find((row) => row.key === 'added_latency_p50_per_crossing')?.status).toBe('REGRESSED')
  })
})

describe('the committed baseline', () => {
  it('parses, and gives every gated figure a tolerance', () => {
    const baseline = parseBaseline(readFileSync(BASELINE, 'utf8'), BASELINE)
    const kinds = Object.keys(baseline.figures).map(figureKind)
    expect(new Set(kinds)).toEqual(new Set(Object.keys(DEFAULT_TOLERANCES)))
  })
})

describe('apt-bench CLI', () => {
  it('--quick --output writes valid JSON and exits 0', async () => {
    const { stdout } = await (cli as Promise<{ stdout: string }>)
    expect(stdout).toContain('LATENCY BENCHMARK RESULTS')
    expect(stdout).toContain('RESULT: OK')
    const written = JSON.parse(readFileSync(join(cliDirectory, 'results.json'), 'utf8')) as BenchResult & { gate: { mode: string, regressed: boolean } }
    expect(written.tool).toBe('@apt/bench')
    expect(written.settings.quick).toBe(true)
    expect(written.gate).toMatchObject({ mode: 'sanity', regressed: false })
    expect(written.figures.proxy?.throughput?.length).toBe(2)
    expect(written.machine.nodeVersion).toBe(process.version)
  }, 120_000)
})
