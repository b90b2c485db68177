/**
 * The dashboard's browser code, inlined into the page after uPlot. Plain ES2020 kept as
 * text (it runs in the browser, not in Node), so it must contain no backtick and no
 * dollar-brace. It polls `metrics` relative to the page URL (`/anthropic/metrics`, also behind a
 * path-preserving proxy), keeps the last five minutes of points and redraws the charts.
 *
 * Query parameters: `token` (sent as `Authorization: Bearer`), `interval` (poll period in
 * ms, 100..60000, default 1000).
 *
 * Test hook: `window.__aptDashboard` = { polls (successful), failures, points (kept),
 * lastError, intervalMs, charts: [{ id, series: [{ label, color }] }], data: { [id]: uPlot data },
 * zeroY: { [id]: canvas row of the y = 0 line } }.
 */
export const DASHBOARD_SCRIPT = String.raw`
(() => {
  'use strict'
  const HISTORY_MS = 5 * 60 * 1000
  const CHART_HEIGHT = 200
  const params = new URLSearchParams(location.search)
  const token = params.get('token')
  const intervalMs = readInterval(params.get('interval'))

  // Each series reads one value from a poll's derived sample; null draws a gap.
  const CHARTS = [
    { id: 'latency', title: 'Request latency', unit: 'ms', windowed: true, series: [
      { label: 'p50', color: '#2563eb', read: (s) => summary(s.window, 'durationMs', 'p50') },
      { label: 'p95', color: '#d97706', read: (s) => summary(s.window, 'durationMs', 'p95') },
      { label: 'p99', color: '#dc2626', read: (s) => summary(s.window, 'durationMs', 'p99') },
      { label: 'TTFT p50', color: '#7c3aed', dash: [6, 4], read: (s) => summary(s.window, 'ttftMs', 'p50') },
    ] },
    { id: 'overhead', title: 'Proxy overhead', unit: 'µs', windowed: true, series: [
      { label: 'p50', color: '#0891b2', read: (s) => summary(s.window, 'overheadUs', 'p50') },
      { label: 'p99', color: '#db2777', read: (s) => summary(s.window, 'overheadUs', 'p99') },
    ] },
    { id: 'requests', title: 'Requests per second', unit: 'req/s', windowed: true, series: [
      { label: 'req/s', color: '#16a34a', read: (s) => s.window ? finite(s.window.requestsPerSecond) : s.rates.requests },
    ] },
    { id: 'errors', title: 'Error rate', unit: '%', windowed: true, series: [
      { label: 'errors', color: '#dc2626', read: (s) => s.window ? (finite(s.window.errorRate) || 0) * 100 : 0 },
    ] },
    { id: 'streams', title: 'Active streams', unit: 'streams', windowed: false, series: [
      { label: 'active', color: '#7c3aed', read: (s) => finite(s.router.active_streams) },
      { label: 'peak in window', color: '#a78bfa', dash: [6, 4], read: (s) => s.window ? finite(s.window.peakActiveStreams) : null },
    ] },
    { id: 'tokens', title: 'Tokens per second', unit: 'tokens/s', windowed: false, series: [
      { label: 'input', color: '#2563eb', read: (s) => s.rates.input },
      { label: 'output', color: '#16a34a', read: (s) => s.rates.output },
      { label: 'cache read', color: '#d97706', dash: [6, 4], read: (s) => s.rates.cacheRead },
    ] },
  ]

  const STATS = [
    ['requests', 'requests (total)'], ['errors', 'errors (total)'], ['active', 'active requests'],
    ['streams', 'active streams'], ['rps', 'req/s (window)'], ['rss', 'RSS'], ['heap', 'heap used'],
    ['reuse', 'upstream reuse'], ['uptime', 'uptime'], ['trend', 'p95 trend'],
  ]

  const times = []
  const data = {}
  const charts = {}
  const state = {
    polls: 0, failures: 0, points: 0, lastError: null, intervalMs,
    charts: CHARTS.map((c) => ({ id: c.id, series: c.series.map((s) => ({ label: s.label, color: s.color })) })),
    data,
    zeroY: {},
  }
  window.__aptDashboard = state
  let previous = null
  let windowNote = ''

  function readInterval (raw) {
    const value = Number(raw)
    if (raw === null || raw === '' || !Number.isFinite(value)) return 1000
    return Math.min(60000, Math.max(100, Math.round(value)))
  }
  function finite (value) { return typeof value === 'number' && Number.isFinite(value) ? value : null }
  function summary (win, kind, field) { return win && win[kind] ? finite(win[kind][field]) : null }
  function el (tag, className, text) {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = text
    return node
  }
  function number (value) {
    const v = finite(value)
    if (v === null) return '–'
    const abs = Math.abs(v)
    if (abs >= 1e6) return (v / 1e6).toFixed(abs >= 1e7 ? 1 : 2) + 'M'
    if (abs >= 1e4) return (v / 1e3).toFixed(abs >= 1e5 ? 0 : 1) + 'k'
    if (abs >= 100 || Number.isInteger(v)) return Math.round(v).toString()
    return v.toFixed(abs >= 10 ? 1 : 2)
  }
  function bytes (value) {
    const v = finite(value)
    return v === null ? '–' : (v / 1048576).toFixed(1) + ' MiB'
  }
  function duration (ms) {
    const v = finite(ms)
    if (v === null) return '–'
    const seconds = Math.floor(v / 1000)
    if (seconds < 60) return seconds + ' s'
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ' + (seconds % 60) + ' s'
    return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min'
  }
  // HH:MM:SS in the browser's time zone (locale-independent, 24 h).
  function clock (epochMs) {
    const v = finite(epochMs)
    if (v === null) return '–'
    const date = new Date(v)
    return [date.getHours(), date.getMinutes(), date.getSeconds()].map((part) => String(part).padStart(2, '0')).join(':')
  }
  // An alert value in the unit its metric names.
  function metricValue (metric, value) {
    const v = finite(value)
    if (v === null) return '–'
    const name = String(metric || '')
    if (/errorRate/.test(name)) return (v * 100).toFixed(2) + ' %'
    if (/Bytes$/.test(name)) return bytes(v)
    if (/^overheadUs\./.test(name)) return number(v) + ' µs'
    if (/Ms(\.|$)/.test(name)) return number(v) + ' ms'
    if (/PerSecond$/.test(name)) return number(v) + ' /s'
    return number(v)
  }

  function sumUsage (usage) {
    const totals = { input: 0, output: 0, cacheRead: 0 }
    const byModel = usage && usage.by_model ? usage.by_model : {}
    for (const model of Object.keys(byModel)) {
      const row = byModel[model] || {}
      totals.input += finite(row.input) || 0
      totals.output += finite(row.output) || 0
      totals.cacheRead += finite(row.cache_read) || 0
    }
    return totals
  }
  // Per-second rates from two cumulative readings; null on the first poll or after a counter reset.
  function rate (now, before, seconds) {
    if (before === null || !(seconds > 0)) return null
    const delta = now - before
    return delta >= 0 ? delta / seconds : null
  }

  function buildLayout () {
    const stats = document.getElementById('stats')
    for (const [key, label] of STATS) {
      const box = el('div', 'stat')
      box.appendChild(el('div', 'label', label))
      const value = el('div', 'value', '–')
      value.id = 'stat-' + key
      box.appendChild(value)
      stats.appendChild(box)
    }
    const holder = document.getElementById('charts')
    for (const def of CHARTS) {
      const card = el('article', 'card')
      card.dataset.chart = def.id
      const title = el('h2', null, def.title + ' ')
      const note = el('span', 'note', '(' + def.unit + ')')
      note.id = 'note-' + def.id
      title.appendChild(note)
      card.appendChild(title)
      const box = el('div', 'chart')
      box.id = 'chart-' + def.id
      card.appendChild(box)
      holder.appendChild(card)
      data[def.id] = [times].concat(def.series.map(() => []))
      charts[def.id] = makeChart(def, box)
    }
    window.addEventListener('resize', resize)
  }

  function makeChart (def, box) {
    const axis = { stroke: '#475569', grid: { stroke: '#e2e8f0', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } }
    const options = {
      width: Math.max(200, box.clientWidth),
      height: CHART_HEIGHT,
      scales: {
        x: { time: true },
        // Everything drawn here is non-negative; an empty or all-zero chart still gets a 0..1 axis.
        y: { range: (u, min, max) => [0, finite(max) !== null && max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        // Whole seconds at least, labelled HH:MM:SS.
        Object.assign({}, axis, { space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300], values: (u, ticks) => ticks.map((t) => clock(t * 1000)) }),
        Object.assign({}, axis, { size: 56, values: (u, ticks) => ticks.map(number) }),
      ],
      series: [{ value: (u, v) => clock(v === null ? null : v * 1000) }].concat(def.series.map((s) => {
        const series = { label: s.label, stroke: s.color, width: 2, value: (u, v) => number(v) }
        if (s.dash) series.dash = s.dash
        return series
      })),
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      // Away from the cursor, the legend shows the latest values.
      hooks: { setCursor: [(u) => { if (u.cursor.idx == null) showLatest(u) }] },
    }
    return new uPlot(options, data[def.id], box)
  }

  function showLatest (chart) {
    const last = times.length - 1
    if (last >= 0 && chart.cursor.idx == null) chart.setLegend({ idx: last })
  }

  function resize () {
    for (const def of CHARTS) {
      const box = document.getElementById('chart-' + def.id)
      charts[def.id].setSize({ width: Math.max(200, box.clientWidth), height: CHART_HEIGHT })
    }
  }

  function setText (id, text) {
    const node = document.getElementById(id)
    if (node && node.textContent !== text) node.textContent = text
  }

  function setStatus (kind, text) {
    const node = document.getElementById('status')
    node.className = 'status status-' + kind
    node.textContent = text
  }

  function ingest (snapshot) {
    const router = snapshot.router_metrics || {}
    const adapter = snapshot.adapter_metrics || {}
    const monitor = snapshot.monitor || null
    const windows = monitor && Array.isArray(monitor.windows) ? monitor.windows : []
    let win = null
    for (const candidate of windows) if (win === null || candidate.windowMs < win.windowMs) win = candidate
    const serverMs = finite(monitor && monitor.at) || Date.parse(snapshot.timestamp) || Date.now()
    const totals = sumUsage(snapshot.usage_metrics)
    const requests = finite(router.total_requests) || 0
    const seconds = previous === null ? 0 : (serverMs - previous.serverMs) / 1000
    const rates = {
      input: rate(totals.input, previous && previous.totals.input, seconds),
      output: rate(totals.output, previous && previous.totals.output, seconds),
      cacheRead: rate(totals.cacheRead, previous && previous.totals.cacheRead, seconds),
      requests: rate(requests, previous && previous.requests, seconds),
    }
    previous = { serverMs, totals, requests }
    const sample = { window: win, router, rates }

    // The x axis is the browser's clock (always increasing); rates use the server's.
    let t = Date.now() / 1000
    if (times.length > 0 && t <= times[times.length - 1]) t = times[times.length - 1] + 0.001
    times.push(t)
    for (const def of CHARTS) {
      const columns = data[def.id]
      def.series.forEach((s, index) => { columns[index + 1].push(finite(s.read(sample))) })
    }
    let drop = 0
    while (drop < times.length && times[drop] < t - HISTORY_MS / 1000) drop++
    if (drop > 0) for (const def of CHARTS) for (const column of data[def.id]) if (column !== times) column.splice(0, drop)
    if (drop > 0) times.splice(0, drop)
    state.points = times.length

    const note = win ? ', last ' + Math.round(win.windowMs / 1000) + ' s' : ''
    if (note !== windowNote) {
      windowNote = note
      for (const def of CHARTS) if (def.windowed) setText('note-' + def.id, '(' + def.unit + note + ')')
    }
    for (const def of CHARTS) {
      charts[def.id].setData(data[def.id])
      showLatest(charts[def.id])
      state.zeroY[def.id] = charts[def.id].valToPos(0, 'y', true)
    }

    const totalErrors = finite(router.total_errors) || 0
    setText('stat-requests', number(requests))
    setText('stat-errors', number(totalErrors) + (requests > 0 ? ' (' + (totalErrors / requests * 100).toFixed(1) + ' %)' : ''))
    setText('stat-active', number(router.active_requests))
    setText('stat-streams', number(router.active_streams))
    setText('stat-rps', win ? number(win.requestsPerSecond) : number(rates.requests))
    const memory = monitor && monitor.memory ? monitor.memory : (win && win.memory ? win.memory : null)
    setText('stat-rss', memory ? bytes(memory.rssBytes) : '–')
    setText('stat-heap', memory ? bytes(memory.heapUsedBytes) : '–')
    const connections = adapter.connection_stats || {}
    const reuse = finite(connections.reuse_ratio)
    setText('stat-reuse', reuse === null ? '–' : (reuse * 100).toFixed(1) + ' %')
    setText('stat-uptime', monitor ? duration(monitor.uptimeMs) : '–')
    const trends = monitor && monitor.trends ? monitor.trends : null
    const slope = trends ? finite(trends.p95SlopeMsPerMinute) : null
    const regressed = trends && trends.regression && trends.regression.regressed === true
    setText('stat-trend', regressed ? 'regressed' : (slope === null ? '–' : (slope >= 0 ? '+' : '') + number(slope) + ' ms/min'))

    renderAlerts(monitor)
    const upstream = adapter.configuration && adapter.configuration.upstream ? ' · upstream ' + adapter.configuration.upstream : ''
    setText('footer', 'polling every ' + intervalMs + ' ms · keeping ' + (HISTORY_MS / 60000) + ' min · ' + times.length + ' points' + upstream)
    setStatus(adapter.status === 'draining' ? 'bad' : 'ok', (adapter.status || 'up') + ' · updated ' + clock(Date.now()))
  }

  function renderAlerts (monitor) {
    const body = document.getElementById('alerts')
    const rows = []
    const alerts = monitor && Array.isArray(monitor.alerts) ? monitor.alerts : null
    if (alerts === null || alerts.length === 0) {
      const row = el('tr')
      const cell = el('td', 'muted', alerts === null ? 'monitor disabled' : 'no alert rules')
      cell.colSpan = 5
      row.appendChild(cell)
      rows.push(row)
    } else {
      const order = { firing: 0, pending: 1, ok: 2 }
      const sorted = alerts.slice().sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3))
      for (const alert of sorted) {
        const rule = alert.rule || {}
        const stateName = String(alert.state || 'ok')
        const row = el('tr', 'alert-' + stateName)
        row.dataset.rule = String(rule.id)
        row.title = String(rule.description || '')
        row.appendChild(el('td', null, String(rule.id)))
        const stateCell = el('td')
        stateCell.appendChild(el('span', 'state state-' + stateName, stateName))
        row.appendChild(stateCell)
        row.appendChild(el('td', null, metricValue(rule.metric, alert.value)))
        row.appendChild(el('td', null, (rule.comparator || '') + ' ' + metricValue(rule.metric, rule.threshold)))
        row.appendChild(el('td', null, stateName === 'ok' ? '–' : clock(alert.since)))
        rows.push(row)
      }
    }
    body.replaceChildren(...rows)
  }

  async function poll () {
    const started = performance.now()
    const controller = new AbortController()
    const timeout = setTimeout(() => controller.abort(), Math.max(5000, intervalMs * 5))
    try {
      const headers = { accept: 'application/json' }
      if (token) headers.authorization = 'Bearer ' + token
      const response = await fetch('metrics', { headers, cache: 'no-store', credentials: 'same-origin', redirect: 'error', signal: controller.signal })
      if (!response.ok) {
        throw new Error(response.status === 401
          ? 'HTTP 401: the metrics endpoint needs a token; add ?token=... to this page URL'
          : 'HTTP ' + response.status + ' from the metrics endpoint')
      }
      ingest(await response.json())
      state.polls++
      state.lastError = null
    } catch (error) {
      state.failures++
      state.lastError = error && error.name === 'AbortError' ? 'metrics request timed out' : String(error && error.message ? error.message : error)
      setStatus('bad', 'metrics unavailable: ' + state.lastError)
    } finally {
      clearTimeout(timeout)
      setTimeout(poll, Math.max(0, intervalMs - (performance.now() - started)))
    }
  }

  buildLayout()
  poll()
})()
`
