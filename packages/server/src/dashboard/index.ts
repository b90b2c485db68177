export { type DashboardPage, dashboardPage } from './dashboard-page.js'
export { DASHBOARD_PATH, type DashboardRouteOptions, dashboardRoute } from './dashboard-route.js'
