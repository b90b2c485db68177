/** The dashboard's own stylesheet (after uPlot's), inlined into the page. */
export const DASHBOARD_STYLE = `
:root { color-scheme: light; --fg: #0f172a; --muted: #64748b; --line: #e2e8f0; --card: #ffffff; --bg: #f1f5f9;
  --ok: #16a34a; --warn: #d97706; --bad: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 24px; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { margin: 0; font-size: 20px; }
h1 .sub { font-weight: 400; color: var(--muted); }
h2 { margin: 0 0 6px; font-size: 14px; font-weight: 600; }
h2 .note { font-weight: 400; color: var(--muted); }
.top { display: flex; align-items: center; justify-content: space-between; gap: 16px; margin-bottom: 12px; }
.status { padding: 4px 10px; border-radius: 999px; font-size: 13px; background: var(--line); }
.status-ok { background: #dcfce7; color: #166534; }
.status-bad { background: #fee2e2; color: #991b1b; }
.status-wait { background: var(--line); color: var(--muted); }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; margin-bottom: 12px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.stat .label { color: var(--muted); font-size: 12px; }
.stat .value { font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; margin-bottom: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; }
.chart { width: 100%; min-height: 200px; }
.uplot { width: 100%; }
.u-legend { font-size: 12px; }
.u-legend .u-value { font-variant-numeric: tabular-nums; }
.alerts table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
.alerts th, .alerts td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); }
.alerts th { color: var(--muted); font-weight: 500; font-size: 12px; }
.alerts tr.alert-firing td { background: #fee2e2; color: #991b1b; font-weight: 600; }
.alerts tr.alert-pending td { background: #fef3c7; color: #92400e; }
.state { display: inline-block; min-width: 56px; padding: 1px 8px; border-radius: 999px; font-size: 12px; text-align: center; }
.state-ok { background: #dcfce7; color: #166534; }
.state-pending { background: #fde68a; color: #92400e; }
.state-firing { background: var(--bad); color: #fff; }
.muted { color: var(--muted); }
footer { margin-top: 10px; font-size: 12px; }
`
