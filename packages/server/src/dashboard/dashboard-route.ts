import type { FastifyInstance } from 'fastify'
import { dashboardPage } from './dashboard-page.js'

export interface DashboardRouteOptions {
  /** false: the route is not registered (the path answers 404 like any unknown path). */
  enabled: boolean
}

/** Where the dashboard is served; it polls `metrics` relative to this path, i.e. `/anthropic/metrics`. */
export const DASHBOARD_PATH = '/anthropic/dashboard'

/**
 * Registers `GET /anthropic/dashboard`: one self-contained HTML page (uPlot inlined) that polls
 * `/anthropic/metrics` from the browser. The page itself holds no data, so it needs no token;
 * the metrics it fetches stay behind the metrics token (`?token=` in the page URL is sent as
 * `Authorization: Bearer`). Call before the app is ready.
 */
export function dashboardRoute (app: FastifyInstance, options: DashboardRouteOptions): void {
  if (!options.enabled) return
  const page = dashboardPage()
  app.get(DASHBOARD_PATH, (_request, reply) => {
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', page.contentSecurityPolicy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .send(page.html)
  })
}
