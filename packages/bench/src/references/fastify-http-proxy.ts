/**
 * Reference proxy: Fastify with @fastify/http-proxy (undici underneath), the
 * usual Fastify way to build a gateway. Logging is off, as in its README
 * examples. Env: UPSTREAM_URL, PORT (listens on 127.0.0.1).
 */
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'

const app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024 })
await app.register(proxy, { upstream: process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8080', http2: false })
await app.listen({ port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' })
const stop = (): void => {
  void app.close().then(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
