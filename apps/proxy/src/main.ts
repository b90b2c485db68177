#!/usr/bin/env node
// First: it holds V8's new space at its initial size while the modules below load.
import { limitNewSpace } from './new-space.js'
import cluster from 'node:cluster'
import { buildServer } from '@apt/server'
import { hasSemiSpaceFlag, loadConfig, type ProxyConfig, readEnvFile } from './config.js'
import { runPrimary } from './primary.js'

/**
 * The deployable proxy: configuration from the environment (and `.env`),
 * listen, warm up, and shut down gracefully on SIGTERM/SIGINT. With
 * APT_WORKERS > 1 the primary process forks that many workers sharing the port.
 */
async function main (): Promise<void> {
  const fileEnv = readEnvFile(process.env.APT_ENV_FILE ?? '.env')
  const result = loadConfig({ ...fileEnv, ...process.env })
  if (!result.ok) {
    process.stderr.write(`apt: invalid configuration (${result.errors.length} problem${result.errors.length === 1 ? '' : 's'}):\n`)
    for (const error of result.errors) process.stderr.write(`  - ${error}\n`)
    process.exit(78)
  }
  const { config } = result
  if (config.workers > 1 && cluster.isPrimary) {
    runPrimary(config)
    return
  }
  await runWorker(config)
}

async function runWorker (config: ProxyConfig): Promise<void> {
  const newSpace = limitNewSpace(hasSemiSpaceFlag(process.execArgv) ? 0 : config.maxSemiSpaceMiB)
  const app = buildServer(config.server)
  await app.listen({ port: config.port, host: config.host })
  app.log.info({ profile: config.profile, upstream: app.apt.upstream.options.origin, max_semi_space_mib: newSpace.maxBytes === 0 ? 'v8 default' : newSpace.maxBytes / 2097152 }, 'apt proxy ready')
  if (config.warmupConnections > 0) {
    app.apt.upstream.warmUp(config.warmupConnections).then(
      (warm) => { app.log.info({ warmup: warm }, 'upstream connections warmed up') },
      (error: unknown) => { app.log.warn({ err: error }, 'warm-up failed') },
    )
  }

  let stopping = false
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    const inFlight = app.apt.inFlight()
    app.log.info({ signal, in_flight: inFlight, deadline_ms: config.shutdownTimeoutMs }, 'draining: refusing new work, finishing in-flight requests')
    app.apt.startDrain()
    const deadline = setTimeout(() => {
      app.log.warn({ in_flight: app.apt.inFlight() }, 'shutdown deadline reached: closing remaining connections')
      app.server.closeAllConnections()
      void app.apt.upstream.destroy()
    }, config.shutdownTimeoutMs).unref()
    app.close().then(() => {
      clearTimeout(deadline)
      // The final summary must never turn a clean drain into a failed exit.
      let metrics: unknown = null
      try {
        metrics = app.apt.metricsSnapshot().router_metrics
      } catch (error) {
        app.log.error({ err: error }, 'could not read the final metrics')
      }
      app.log.info({ stats: app.apt.stats(), metrics }, 'shutdown complete')
      process.exit(0)
    }, (error: unknown) => {
      app.log.error({ err: error }, 'error while closing')
      process.exit(1)
    })
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

main().catch((error: unknown) => {
  process.stderr.write(`apt: failed to start: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
