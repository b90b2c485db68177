/**
 * The two ends of the cross-core round trip (`cross-core.ts`), each pinned by the benchmark:
 *
 * - `echo-main.js` (the server, on the proxies' CPU): listens on 127.0.0.1:`PORT` and echoes
 *   every read back at once; closes on SIGTERM or SIGINT.
 * - `echo-main.js client PORT WARMUP COUNT` (on the load side's CPU): times COUNT one-byte round
 *   trips after WARMUP, one at a time on one connection, and prints one JSON line
 *   `{"count":N,"p50Us":…,"p99Us":…}`.
 */
import { createServer } from 'node:net'
import { measureRoundTrips } from './cross-core.js'

function integer(raw: string | undefined, name: string, min: number, max: number): number {
  const value = Number(raw)
  if (raw === undefined || raw === '' || !Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`${name} must be an integer from ${min} to ${max}, got '${raw}'\n`)
    process.exit(2)
  }
  return value
}

if (process.argv[2] === 'client') {
  const port = integer(process.argv[3], 'PORT', 1, 65535)
  const warmup = integer(process.argv[4], 'WARMUP', 0, 1_000_000)
  const count = integer(process.argv[5], 'COUNT', 1, 1_000_000)
  const histogram = await measureRoundTrips({ port, warmup, count })
  const summary = histogram.summary()
  process.stdout.write(`${JSON.stringify({ count: histogram.count, p50Us: (summary.p50 ?? Number.NaN) * 1000, p99Us: (summary.p99 ?? Number.NaN) * 1000 })}\n`)
} else {
  const port = integer(process.env.PORT ?? '0', 'PORT', 0, 65535)
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('data', (chunk) => socket.write(chunk))
    socket.on('error', () => socket.destroy())
  })
  server.listen(port, '127.0.0.1')
  const shutdown = (): void => {
    server.close(() => process.exit(0))
    server.unref()
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
}
