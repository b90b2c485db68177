/**
 * Reference: Node's floor. This is a TCP relay, not an HTTP proxy. Each client connection gets an
 * upstream connection of its own, and bytes are copied both ways without being looked at: no
 * parsing, no headers, no log, no metrics. Every HTTP proxy written in Node pays at least what
 * this pays for the same exchange: the accept, Node's way into JavaScript for each read, and the
 * write. The bench reports it beside apt so that a figure Node itself cannot reach on this machine
 * is not mistaken for the proxy's cost.
 *
 * The upstream-to-client direction reads into one shared buffer (the socket's `onread`), as apt's
 * wire engine does; a piece is copied once, into the client's write. Back-pressure holds: a full
 * client pauses its upstream socket until it drains. Env: UPSTREAM_URL (plain http), PORT
 * (listens on 127.0.0.1).
 */
import { connect, createServer, type Socket } from 'node:net'

const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8080')
const upstreamPort = Number(upstream.port || 80)
const shared = Buffer.allocUnsafe(64 * 1024)
const connections = new Set<Socket>()

const server = createServer({ noDelay: true }, (client) => {
  const relay: Socket = connect({
    host: upstream.hostname,
    port: upstreamPort,
    noDelay: true,
    onread: {
      buffer: shared,
      // Returning false pauses the upstream socket while the client cannot take more.
      callback: (length: number, buffer: Uint8Array): boolean => client.write(Buffer.from(buffer.subarray(0, length))),
    },
  })
  client.on('drain', () => relay.resume())
  client.pipe(relay)
  connections.add(client)
  client.on('error', () => client.destroy())
  client.on('close', () => {
    connections.delete(client)
    relay.destroy()
  })
  relay.on('error', () => client.destroy())
  // The upstream closing its side ends the client's once what was written has left.
  relay.on('close', () => client.end())
})
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1')
const stop = (): void => {
  server.close(() => process.exit(0))
  for (const client of connections) client.destroy()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
