import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { DASHBOARD_SCRIPT } from './dashboard-script.js'
import { DASHBOARD_STYLE } from './dashboard-style.js'

export interface DashboardPage {
  /** The whole page: uPlot's script and stylesheet and the dashboard's own, all inline. */
  readonly html: string
  /** Allows exactly the inline blocks of `html` (by hash) and same-origin fetch; nothing else. */
  readonly contentSecurityPolicy: string
}

let cached: DashboardPage | undefined

/** Built once per process (the uPlot files are read on the first call), then reused. */
export function dashboardPage (): DashboardPage {
  cached ??= buildDashboardPage()
  return cached
}

function buildDashboardPage (): DashboardPage {
  const require = createRequire(import.meta.url)
  const uplotScript = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8')
  const uplotStyle = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8')
  const style = `${uplotStyle}\n${DASHBOARD_STYLE}`
  for (const [name, text, closing] of [['uPlot script', uplotScript, '</script'], ['dashboard script', DASHBOARD_SCRIPT, '</script'], ['style', style, '</style']] as const) {
    // Inline text cannot contain its own closing tag; fail at startup rather than serve a broken page.
    if (text.toLowerCase().includes(closing)) throw new Error(`The dashboard's ${name} contains ${closing} and cannot be inlined`)
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>apt · live dashboard</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header class="top">
  <h1>apt <span class="sub">live dashboard</span></h1>
  <div id="status" class="status status-wait">waiting for the first poll…</div>
</header>
<section id="stats" class="stats" aria-label="Totals"></section>
<section id="charts" class="charts" aria-label="Charts"></section>
<section class="card alerts" aria-label="Alerts">
  <h2>Alerts</h2>
  <table>
    <thead><tr><th>rule</th><th>state</th><th>value</th><th>threshold</th><th>since</th></tr></thead>
    <tbody id="alerts"><tr><td colspan="5" class="muted">no data yet</td></tr></tbody>
  </table>
</section>
<footer id="footer" class="muted"></footer>
<script>${uplotScript}</script>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src ${sha256Source(uplotScript)} ${sha256Source(DASHBOARD_SCRIPT)}`,
    `style-src ${sha256Source(style)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
  return { html, contentSecurityPolicy }
}

function sha256Source (text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
}
