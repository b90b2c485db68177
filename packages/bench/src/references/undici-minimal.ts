/**
 * Reference proxy: the smallest sensible Node pass-through. node:http server,
 * one undici Pool, `pool.stream()` piping the upstream body straight into the
 * response. Env: UPSTREAM_URL, PORT (listens on 127.0.0.1); APT_BENCH_DELAY_MS
 * delays every request (for testing the regression gate).
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { Pool } from 'undici'

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host'])
const pool = new Pool(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8080', { pipelining: 1, keepAliveTimeout: 30_000 })
const delayMs = Number(process.env.APT_BENCH_DELAY_MS ?? 0)

function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  }
  return out
}

const server = createServer((request, response) => {
  const forward = (): void => {
    const method = request.method ?? 'GET'
    pool.stream(
      { path: request.url ?? '/', method, headers: endToEnd(request.headers), body: method === 'GET' || method === 'HEAD' ? null : request },
      ({ statusCode, headers }) => {
        response.writeHead(statusCode, endToEnd(headers))
        return response
      },
      (error) => {
        if (error === null) return
        if (!response.headersSent) response.writeHead(502, { 'content-type': 'application/json' }).end('{"type":"error","error":{"type":"api_error","message":"upstream failed"}}')
        else response.destroy(error)
      },
    )
  }
  if (delayMs > 0) setTimeout(forward, delayMs)
  else forward()
})
server.keepAliveTimeout = 60_000
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1')
const stop = (): void => {
  server.close()
  server.closeAllConnections()
  void pool.close().then(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
