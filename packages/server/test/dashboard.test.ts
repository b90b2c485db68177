/// <reference lib="dom" />
import { existsSync, mkdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { createEmulator, type Emulator } from '@apt/bench'
import { buildServer, type ServerOptions } from '@apt/server'
import type { FastifyInstance } from 'fastify'
import { type Browser, chromium, type Page } from 'playwright-core'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DASHBOARD_PATH, dashboardRoute } from '../src/dashboard/index.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url))

interface DashboardState {
  polls: number
  failures: number
  points: number
  lastError: string | null
  intervalMs: number
  charts: { id: string, series: { label: string, color: string }[] }[]
  data: Record<string, (number | null)[][]>
  zeroY: Record<string, number>
}

/** The browser-side test hook, read inside `page.evaluate`. */
declare global {
  interface Window { __aptDashboard?: DashboardState }
}

interface RunningProxy { app: FastifyInstance, url: string }

/** buildServer plus the dashboard route (unless build-server already registers it), listening on loopback. */
async function startProxy (origin: string, options: Partial<ServerOptions> = {}): Promise<RunningProxy> {
  const app = buildServer({ upstream: { origin }, logger: false, ...options })
  if (!app.hasRoute({ method: 'GET', url: DASHBOARD_PATH })) dashboardRoute(app, { enabled: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

/** What a page did that a healthy dashboard never does. */
function watchPage (page: Page, origin: string): { problems: string[] } {
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`console error: ${message.text()}`) })
  page.on('pageerror', (error) => { problems.push(`page error: ${error.message}`) })
  page.on('request', (req) => { if (new URL(req.url()).origin !== origin) problems.push(`off-origin request: ${req.url()}`) })
  page.on('requestfailed', (req) => { problems.push(`failed request: ${req.url()} ${req.failure()?.errorText ?? ''}`) })
  page.on('response', (response) => { if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`) })
  return { problems }
}

/** A wait that, when it times out, says what the page complained about. */
async function until<T> (wait: Promise<T>, problems: string[]): Promise<T> {
  try {
    return await wait
  } catch (error) {
    throw new Error(`${(error as Error).message}\npage problems: ${JSON.stringify(problems, null, 2)}`, { cause: error })
  }
}

const readState = (page: Page): Promise<DashboardState> => page.evaluate(() => {
  const state = window.__aptDashboard
  if (state === undefined) throw new Error('window.__aptDashboard is missing')
  return state
})

interface CanvasReport { id: string, width: number, height: number, drawn: number, bySeries: Record<string, number> }

/** Per chart: the canvas size, how many pixels are drawn at all, and how many above the zero line have each series' colour. */
const inspectCanvases = (page: Page): Promise<CanvasReport[]> => page.evaluate(() => {
  const state = window.__aptDashboard as DashboardState
  return state.charts.map((chart) => {
    const canvas = document.querySelector(`#chart-${chart.id} canvas`)
    if (!(canvas instanceof HTMLCanvasElement)) return { id: chart.id, width: 0, height: 0, drawn: 0, bySeries: {} }
    const pixels = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data
    const colours = chart.series.map((series) => [1, 3, 5].map((at) => Number.parseInt(series.color.slice(at, at + 2), 16)))
    const bySeries: Record<string, number> = Object.fromEntries(chart.series.map((series) => [series.label, 0]))
    let drawn = 0
    // Series pixels are only counted a few rows above the y = 0 line, where only values > 0 are drawn.
    const aboveZero = Math.max(0, Math.floor((state.zeroY[chart.id] ?? 0) - 4)) * canvas.width * 4
    for (let index = 0; index < pixels.length; index += 4) {
      const alpha = pixels[index + 3] as number
      if (alpha === 0) continue
      drawn++
      // Anti-aliased edges keep the line's colour at a lower alpha; the faintest are left out.
      if (alpha < 64 || index >= aboveZero) continue
      colours.forEach((rgb, series) => {
        const distance = Math.abs((pixels[index] as number) - (rgb[0] as number)) + Math.abs((pixels[index + 1] as number) - (rgb[1] as number)) + Math.abs((pixels[index + 2] as number) - (rgb[2] as number))
        const label = (chart.series[series] as { label: string }).label
        if (distance < 80) bySeries[label] = (bySeries[label] ?? 0) + 1
      })
    }
    return { id: chart.id, width: canvas.width, height: canvas.height, drawn, bySeries }
  })
})

const seriesMax = (state: DashboardState, chart: string, index: number): number =>
  Math.max(0, ...((state.data[chart]?.[index] ?? []).filter((value): value is number => value !== null)))

const CHART_IDS = ['latency', 'overhead', 'requests', 'errors', 'streams', 'tokens']

describe('GET /anthropic/dashboard', () => {
  test('serves one self-contained page with a restrictive content-security-policy', async () => {
    const app = buildServer({ upstream: { origin: 'http://127.0.0.1:9' }, logger: false })
    if (!app.hasRoute({ method: 'GET', url: DASHBOARD_PATH })) dashboardRoute(app, { enabled: true })
    try {
      const response = await app.inject({ method: 'GET', url: DASHBOARD_PATH })
      expect(response.statusCode).toBe(200)
      expect(response.headers['content-type']).toMatch(/^text\/html/)
      const policy = String(response.headers['content-security-policy'])
      expect(policy).toContain("default-src 'none'")
      expect(policy).toContain("connect-src 'self'")
      expect(policy).not.toContain('unsafe-inline')
      expect(policy).not.toMatch(/https?:/)
      const html = response.body
      expect(html).toContain('uPlot')
      expect(html.match(/<script>/g)?.length).toBe(2)
      // Nothing is loaded from anywhere: no src/href to a URL, no @import, no url(http...).
      expect(html).not.toMatch(/<script\b[^>]*\bsrc\s*=/i)
      expect(html).not.toMatch(/<link\b[^>]*\bhref\s*=\s*["']?(https?:)?\/\//i)
      expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i)
      expect(html).not.toMatch(/@import|url\(\s*["']?(https?:)?\/\//i)
    } finally {
      await app.close()
    }
  })

  test('is not registered when disabled (it follows the metrics endpoints)', async () => {
    const app = buildServer({ upstream: { origin: 'http://127.0.0.1:9' }, logger: false, metrics: { enabled: false } })
    dashboardRoute(app, { enabled: false })
    try {
      expect(app.hasRoute({ method: 'GET', url: DASHBOARD_PATH })).toBe(false)
    } finally {
      await app.close()
    }
  })
})

describe('the dashboard in headless Chromium', () => {
  let emulator: Emulator
  let proxy: RunningProxy
  let browser: Browser
  const agent = new Agent({ connections: 4 })
  let stopTraffic = false
  let traffic: Promise<number> = Promise.resolve(0)

  /** A bounded background loop of JSON and streaming messages through the proxy. */
  async function generateTraffic (origin: string, maxRequests: number): Promise<number> {
    let sent = 0
    const worker = async (offset: number): Promise<void> => {
      for (let index = offset; !stopTraffic && sent < maxRequests; index += 2) {
        sent++
        const response = await request(`${origin}/v1/messages`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: index % 2 === 0 }),
        })
        await response.body.text()
        if (response.statusCode !== 200) throw new Error(`traffic: HTTP ${response.statusCode}`)
        await new Promise((resolve) => setTimeout(resolve, 15))
      }
    }
    await Promise.all([worker(0), worker(1)])
    return sent
  }

  beforeAll(async () => {
    // A missing browser is a failure, not a skip: CI installs Debian's chromium.
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with apt-get install -y chromium`)
    emulator = await createEmulator()
    proxy = await startProxy(emulator.url)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  })
  afterAll(async () => {
    stopTraffic = true
    await browser?.close()
    await traffic.catch(() => 0)
    await agent.close()
    await proxy?.app.close()
    await emulator?.close()
  })

  test('draws every chart with zero traffic, then with data under load', async () => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } })
    const { problems } = watchPage(page, proxy.url)
    await page.goto(`${proxy.url}${DASHBOARD_PATH}?interval=400`)

    // Zero traffic: charts, header and alerts render, with no NaN anywhere.
    await until(page.waitForFunction(() => (window.__aptDashboard?.polls ?? 0) >= 2, undefined, { timeout: 10_000 }), problems)
    const idle = await readState(page)
    expect(idle.lastError).toBeNull()
    expect(idle.intervalMs).toBe(400)
    expect(idle.charts.map((chart) => chart.id)).toEqual(CHART_IDS)
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text; textContent would include the inline scripts
    const idleText = await page.evaluate(() => document.body.innerText)
    expect(idleText).not.toMatch(/NaN|undefined|Infinity/)
    for (const canvas of await inspectCanvases(page)) {
      expect(canvas.width, canvas.id).toBeGreaterThan(100)
      expect(canvas.drawn, `${canvas.id} draws its axes`).toBeGreaterThan(500)
      // Nothing above zero yet: the pixel count below does tell data from an empty chart.
      expect(Object.values(canvas.bySeries).reduce((sum, count) => sum + count, 0), `${canvas.id} has no line above 0`).toBe(0)
    }
    expect(await page.locator('#alerts tr').count()).toBeGreaterThanOrEqual(4)
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: `${ARTIFACTS}dashboard-idle.png`, fullPage: true })

    // Under load: the series carry data and are drawn.
    traffic = generateTraffic(proxy.url, 1500)
    const pollsBefore = idle.polls
    await until(page.waitForFunction((before) => {
      const state = window.__aptDashboard
      // Four polls under load, so that the lines span a good part of each chart.
      if (state === undefined || state.polls < before + 4) return false
      const positive = (column: (number | null)[] | undefined): number => (column ?? []).filter((value) => value !== null && value > 0).length
      return positive(state.data.requests?.[1]) >= 4 && positive(state.data.tokens?.[2]) >= 3 && positive(state.data.overhead?.[1]) >= 3
    }, pollsBefore, { timeout: 15_000 }), problems)
    const busy = await readState(page)
    expect(busy.polls).toBeGreaterThanOrEqual(3)
    expect(busy.failures).toBe(0)
    expect(busy.lastError).toBeNull()
    expect(busy.points).toBeGreaterThanOrEqual(5)
    expect(seriesMax(busy, 'requests', 1)).toBeGreaterThan(0)
    expect(seriesMax(busy, 'tokens', 1)).toBeGreaterThan(0) // input tokens/s
    expect(seriesMax(busy, 'tokens', 2)).toBeGreaterThan(0) // output tokens/s
    expect(seriesMax(busy, 'latency', 1)).toBeGreaterThan(0) // p50 ms
    expect(seriesMax(busy, 'overhead', 1)).toBeGreaterThan(0) // p50 µs

    const canvases = new Map((await inspectCanvases(page)).map((canvas) => [canvas.id, canvas]))
    for (const id of CHART_IDS) expect(canvases.get(id)?.drawn, `${id} is drawn`).toBeGreaterThan(500)
    // Each data-bearing chart shows pixels in its series' colours (lines, not just axes). Lines
    // can cover each other (p50 under TTFT p50), so latency and overhead count all their series.
    const linePixels = (id: string, labels: string[]): number => labels.reduce((sum, label) => sum + (canvases.get(id)?.bySeries[label] ?? 0), 0)
    expect(linePixels('latency', ['p50', 'p95', 'p99', 'TTFT p50']), 'latency lines').toBeGreaterThan(200)
    expect(linePixels('overhead', ['p50', 'p99']), 'overhead lines').toBeGreaterThan(150)
    expect(linePixels('requests', ['req/s']), 'req/s line').toBeGreaterThan(150)
    expect(linePixels('tokens', ['output']), 'output tokens/s line').toBeGreaterThan(100)

    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text; textContent would include the inline scripts
    const text = await page.evaluate(() => document.body.innerText)
    expect(text).not.toMatch(/NaN|undefined|Infinity/)
    expect(await page.locator('#stat-requests').textContent()).not.toBe('–')
    expect(await page.locator('#stat-reuse').textContent()).toMatch(/%$/)
    expect(await page.locator('#stat-rss').textContent()).toMatch(/MiB$/)

    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true })
    expect(problems).toEqual([])
    await page.close()
    stopTraffic = true
    expect(await traffic).toBeGreaterThan(10)
  })

  test('sends ?token= as Authorization: Bearer, and says so when the token is missing', async () => {
    const guarded = await startProxy(emulator.url, { metrics: { token: 's3cret', processMetrics: false } })
    try {
      const page = await browser.newPage()
      const { problems } = watchPage(page, guarded.url)
      await page.goto(`${guarded.url}${DASHBOARD_PATH}?token=s3cret&interval=200`)
      await until(page.waitForFunction(() => (window.__aptDashboard?.polls ?? 0) >= 2, undefined, { timeout: 10_000 }), problems)
      expect((await readState(page)).lastError).toBeNull()
      expect(problems).toEqual([])
      await page.close()

      const anonymous = await browser.newPage()
      await anonymous.goto(`${guarded.url}${DASHBOARD_PATH}?interval=200`)
      await anonymous.waitForFunction(() => (window.__aptDashboard?.failures ?? 0) >= 1, undefined, { timeout: 10_000 })
      const state = await readState(anonymous)
      expect(state.polls).toBe(0)
      expect(state.lastError).toMatch(/401.*token/)
      expect(await anonymous.locator('#status').textContent()).toMatch(/401/)
      await anonymous.close()
    } finally {
      await guarded.app.close()
    }
  })
})
