/**
 * Preloaded (`node --import`) into the emulator process the benchmark starts, so
 * that `emulator-main` runs unchanged: counts accepted TCP connections and HTTP
 * requests through Node's built-in diagnostics channels and answers
 * `{ type: 'stats' }` messages on the IPC channel. When the benchmark goes away
 * (IPC disconnect), the emulator is stopped the way SIGTERM stops it.
 */
import { subscribe } from 'node:diagnostics_channel'

export interface UpstreamCounters {
  connections: number
  requests: number
}

const counters: UpstreamCounters = { connections: 0, requests: 0 }
subscribe('net.server.socket', () => {
  counters.connections++
})
subscribe('http.server.request.start', () => {
  counters.requests++
})
// The fast upstream (EMULATOR_KIND=fast) reads its sockets without node:http and publishes here.
subscribe('apt.bench.upstream.request', () => {
  counters.requests++
})

if (process.send !== undefined) {
  process.on('message', (message: unknown) => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'stats') {
      process.send?.({ type: 'stats', id: (message as { id?: unknown }).id, ...counters })
    }
  })
  process.once('disconnect', () => {
    process.kill(process.pid, 'SIGTERM')
  })
}
