import cluster, { type Worker } from 'node:cluster'
import type { ProxyConfig } from './config.js'

function log (level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  const levels = { info: 30, warn: 40, error: 50 }
  process.stdout.write(`${JSON.stringify({ level: levels[level], time: Date.now(), pid: process.pid, role: 'primary', ...fields, msg: message })}\n`)
}

/**
 * The primary of a multi-core proxy: forks `config.workers` workers (they share
 * the listening port through node:cluster), replaces a worker that dies while
 * running, and on SIGTERM/SIGINT passes the signal on, waits for every worker
 * to drain and exits 0 (1 if a worker failed). A second signal kills them at once.
 */
export function runPrimary (config: ProxyConfig): void {
  let stopping = false
  let failed = false
  const restarts: number[] = []

  const fork = (): Worker => cluster.fork()
  for (let i = 0; i < config.workers; i++) fork()
  log('info', 'apt primary started', { workers: config.workers })

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (code !== 0) failed = true
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log('info', 'all workers stopped', { failed })
        process.exit(failed ? 1 : 0)
      }
      return
    }
    // A worker died while serving: replace it, but stop if workers crash-loop.
    const now = Date.now()
    restarts.push(now)
    while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift()
    if (code === 78 || restarts.length > config.workers * 5) {
      log('error', 'workers keep failing: giving up', { code, signal })
      process.exit(1)
    }
    log('warn', 'worker died: starting a replacement', { worker_pid: worker.process.pid, code, signal })
    fork()
  })

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log('warn', 'second signal: killing workers', { signal })
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    log('info', 'draining every worker', { signal })
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}
