import type { BenchResult } from './bench-result.js'
import { describeCpuIdle } from './cpu-idle.js'
import type { GateReport } from './gate.js'
import { formatGate, formatReport } from './terminal-report.js'

/**
 * A self-contained HTML report: inline SVG charts drawn here (latency
 * distribution, throughput against concurrency, memory over time) and the
 * terminal report. No scripts, fonts or styles from the network.
 */

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf']
const WIDTH = 760
const HEIGHT = 340
const MARGIN = { top: 36, right: 150, bottom: 48, left: 70 }

interface Series {
  name: string
  points: [number, number][]
}

interface Axis {
  label: string
  /** Maps a data value to 0..1. */
  scale: (value: number) => number
  ticks: { value: number, label: string }[]
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** The idle CPUs' way of waiting, after the machine, where known. */
function idleText(result: BenchResult): string {
  const idle = describeCpuIdle(result.machine.cpuIdle)
  return idle === null ? '' : `; idle CPUs: ${escapeXml(idle)}`
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function linearAxis(label: string, max: number, format: (value: number) => string): Axis {
  const top = niceMax(max)
  const ticks = Array.from({ length: 6 }, (_, index) => (top * index) / 5)
  return { label, scale: (value) => value / top, ticks: ticks.map((value) => ({ value, label: format(value) })) }
}

/** Log scale between powers of ten around the data, ticks at 1-2-5 steps. */
function logAxis(label: string, min: number, max: number): Axis {
  const low = 10 ** Math.floor(Math.log10(Math.max(min, 1e-3)))
  const high = 10 ** Math.ceil(Math.log10(Math.max(max, low * 10)))
  const ticks: { value: number, label: string }[] = []
  for (let decade = low; decade < high * 1.001; decade *= 10) {
    for (const step of [1, 2, 5]) if (step * decade <= high * 1.001) ticks.push({ value: step * decade, label: number(step * decade) })
  }
  const span = Math.log10(high) - Math.log10(low)
  return { label, scale: (value) => (Math.log10(Math.max(value, low)) - Math.log10(low)) / span, ticks }
}

function number(value: number): string {
  if (value === 0) return '0'
  if (Math.abs(value) >= 1000) return `${Math.round(value / 100) / 10}k`
  return Number.isInteger(value) ? String(value) : value.toPrecision(3).replace(/\.?0+$/, '')
}

function chart(title: string, x: Axis, y: Axis, series: Series[], options: { bars?: boolean, markers?: { at: number, label: string }[] } = {}): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const px = (value: number): number => MARGIN.left + Math.max(0, Math.min(1, x.scale(value))) * plotWidth
  const py = (value: number): number => MARGIN.top + (1 - Math.max(0, Math.min(1, y.scale(value)))) * plotHeight
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeXml(title)}">`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`,
  ]
  for (const tick of y.ticks) {
    const ty = py(tick.value)
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`)
    parts.push(`<text x="${MARGIN.left - 6}" y="${ty + 4}" text-anchor="end" font-size="11">${escapeXml(tick.label)}</text>`)
  }
  for (const tick of x.ticks) {
    const tx = px(tick.value)
    parts.push(`<line x1="${tx}" x2="${tx}" y1="${MARGIN.top + plotHeight}" y2="${MARGIN.top + plotHeight + 4}" stroke="#333"/>`)
    parts.push(`<text x="${tx}" y="${MARGIN.top + plotHeight + 17}" text-anchor="middle" font-size="11">${escapeXml(tick.label)}</text>`)
  }
  let lastLabelX = -Infinity
  for (const marker of options.markers ?? []) {
    const mx = px(marker.at)
    parts.push(`<line x1="${mx}" x2="${mx}" y1="${MARGIN.top}" y2="${MARGIN.top + plotHeight}" stroke="#bbb" stroke-dasharray="3,3"/>`)
    // Labels closer than a line height would overlap: the line stays, the label goes.
    if (mx - lastLabelX < 11) continue
    lastLabelX = mx
    parts.push(`<text x="${mx + 2}" y="${MARGIN.top + 10}" font-size="9" fill="#777" transform="rotate(90 ${mx + 2} ${MARGIN.top + 10})">${escapeXml(marker.label)}</text>`)
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`)
  parts.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 10}" text-anchor="middle" font-size="12">${escapeXml(x.label)}</text>`)
  parts.push(`<text x="16" y="${MARGIN.top + plotHeight / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${MARGIN.top + plotHeight / 2})">${escapeXml(y.label)}</text>`)
  const barGroups = options.bars === true ? x.ticks.length : 0
  series.forEach((entry, index) => {
    const color = COLORS[index % COLORS.length] as string
    if (options.bars === true) {
      const groupWidth = plotWidth / Math.max(1, barGroups)
      const barWidth = (groupWidth * 0.8) / Math.max(1, series.length)
      for (const [xValue, yValue] of entry.points) {
        const slot = x.ticks.findIndex((tick) => tick.value === xValue)
        if (slot < 0) continue
        const bx = MARGIN.left + slot * groupWidth + groupWidth * 0.1 + index * barWidth
        const by = py(yValue)
        parts.push(`<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(MARGIN.top + plotHeight - by).toFixed(1)}" fill="${color}"><title>${escapeXml(`${entry.name}: ${number(yValue)}`)}</title></rect>`)
      }
    } else if (entry.points.length > 0) {
      const path = entry.points.map(([xValue, yValue], point) => `${point === 0 ? 'M' : 'L'}${px(xValue).toFixed(1)},${py(yValue).toFixed(1)}`).join(' ')
      parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`)
      if (entry.points.length <= 30) {
        for (const [xValue, yValue] of entry.points) parts.push(`<circle cx="${px(xValue).toFixed(1)}" cy="${py(yValue).toFixed(1)}" r="3" fill="${color}"><title>${escapeXml(`${entry.name}: ${number(yValue)}`)}</title></circle>`)
      }
    }
    const ly = MARGIN.top + 8 + index * 18
    parts.push(`<rect x="${WIDTH - MARGIN.right + 12}" y="${ly - 8}" width="12" height="12" fill="${color}"/>`)
    parts.push(`<text x="${WIDTH - MARGIN.right + 30}" y="${ly + 2}" font-size="12">${escapeXml(entry.name)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n')
}

function latencyChart(result: BenchResult): string | null {
  const series: Series[] = []
  for (const target of result.targets) {
    const distribution = result.figures[target.name]?.latency?.distribution ?? []
    if (distribution.length > 0) series.push({ name: target.name, points: distribution.filter((point) => point.percentile < 100).map((point) => [point.percentile, point.ms]) })
  }
  if (series.length === 0) return null
  // "Nines" scale: 50 → 90 → 99 → 99.9 → 99.99 equally spaced.
  const nines = (percentile: number): number => -Math.log10(1 - Math.min(percentile, 99.99) / 100)
  const x: Axis = {
    label: 'percentile (concurrency 1)',
    scale: (value) => nines(value) / nines(99.99),
    ticks: [0, 50, 90, 99, 99.9, 99.99].map((value) => ({ value, label: `p${value}` })),
  }
  const values = series.flatMap((entry) => entry.points.map(([, value]) => value)).filter((value) => value > 0)
  return chart('Latency distribution', x, logAxis('latency (ms, log scale)', Math.min(...values), Math.max(...values)), series)
}

function throughputChart(result: BenchResult): string | null {
  const series: Series[] = []
  const levels = new Set<number>()
  for (const target of result.targets) {
    const throughput = result.figures[target.name]?.throughput ?? []
    if (throughput.length === 0) continue
    for (const level of throughput) levels.add(level.concurrency)
    series.push({ name: target.name, points: throughput.map((level) => [level.concurrency, level.requestsPerSecond]) })
  }
  if (series.length === 0) return null
  const sorted = [...levels].sort((a, b) => a - b)
  const x: Axis = { label: 'concurrent connections', scale: (value) => (sorted.indexOf(value) + 0.5) / sorted.length, ticks: sorted.map((value) => ({ value, label: String(value) })) }
  const max = Math.max(...series.flatMap((entry) => entry.points.map(([, value]) => value)))
  return chart('Throughput against concurrency', x, linearAxis('requests per second', max, number), series, { bars: true })
}

function memoryChart(result: BenchResult): string | null {
  const samples = result.timeline.samples
  if (samples.length < 2) return null
  const names = result.targets.map((target) => target.name).filter((name) => samples.some((sample) => sample.rssKb[name] !== undefined))
  const series: Series[] = names.map((name) => ({
    name,
    points: samples.filter((sample) => sample.rssKb[name] !== undefined).map((sample) => [sample.atMs / 1000, (sample.rssKb[name] as number) / 1024]),
  }))
  const end = (samples.at(-1)?.atMs ?? 0) / 1000
  const x = linearAxis('seconds since start', end, number)
  const max = Math.max(...series.flatMap((entry) => entry.points.map(([, value]) => value)))
  const markers = result.timeline.phases.map((phase) => ({ at: phase.atMs / 1000, label: phase.label }))
  return chart('Memory (RSS) over time', x, linearAxis('RSS (MiB)', max, number), series, { markers })
}

/** The HTML document for a run (and its gate report, when there is one). */
export function renderHtmlReport(result: BenchResult, gate?: GateReport): string {
  const charts = [latencyChart(result), throughputChart(result), memoryChart(result)].filter((svg): svg is string => svg !== null)
  const text = formatReport(result) + (gate === undefined ? '' : `\n${formatGate(gate)}`)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>apt benchmark ${escapeXml(result.startedAt)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
svg { display: block; margin: 1.5em 0; font-family: system-ui, sans-serif; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>apt benchmark</h1>
<p>${escapeXml(result.settings.quick ? 'Quick' : 'Full')} run of ${escapeXml(result.startedAt)} on ${result.machine.cpus} CPUs (${escapeXml(result.machine.cpuModel)}), Node ${escapeXml(result.machine.nodeVersion)}${idleText(result)}${result.interrupted ? ' &mdash; <strong>interrupted, partial results</strong>' : ''}.</p>
${charts.join('\n')}
<h2>Report</h2>
<pre>${escapeXml(text)}</pre>
</body>
</html>
`
}
