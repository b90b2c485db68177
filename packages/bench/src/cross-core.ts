import { execFile } from 'node:child_process'
import { connect } from 'node:net'
import { createLatencyHistogram, type LatencyHistogram } from '@apt/monitor'

/**
 * The machine's floor under the added latency at concurrency 1.
 *
 * The bench pins every proxy to its own CPU and the load side (client and upstream) to the other,
 * so a request through a proxy crosses between CPUs twice each way: client → proxy → upstream →
 * proxy → client, while "direct" never leaves the load side's CPU. What one crossing costs is the
 * machine's, not the proxy's: waking an idle CPU takes about 15 µs on one VM and about 40 µs on
 * another (halt-polling off, every wake-up a VM exit). A one-byte TCP echo across the same two
 * CPUs, both ends pinned (`echo-main.ts`), measures it in the same run, so the report can tell a proxy's own cost from the machine's,
 * and the gate can divide by it.
 */
export interface RoundTripOptions {
  /** 127.0.0.1 port of the echo server (`echo-main.ts`), pinned to the proxies' CPU. */
  port: number
  warmup: number
  count: number
  signal?: AbortSignal | undefined
}

/** Round trips of one byte to the echo server, one at a time on one connection; milliseconds. */
export function measureRoundTrips(options: RoundTripOptions): Promise<LatencyHistogram> {
  return new Promise((resolve, reject) => {
    const histogram = createLatencyHistogram()
    const socket = connect({ port: options.port, host: '127.0.0.1', noDelay: true })
    const byte = Buffer.from('x')
    let done = 0
    let sentAt = 0
    const send = (): void => {
      sentAt = performance.now()
      socket.write(byte)
    }
    const finish = (error?: Error): void => {
      socket.destroy()
      options.signal?.removeEventListener('abort', onAbort)
      if (error === undefined) resolve(histogram)
      else reject(error)
    }
    const onAbort = (): void => finish()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('connect', send)
    socket.on('data', (chunk) => {
      // One byte out, one byte back: a read holds exactly one reply.
      if (chunk.length !== 1) {
        finish(new Error(`echo answered ${chunk.length} bytes to one`))
        return
      }
      const tookMs = performance.now() - sentAt
      done++
      if (done > options.warmup) histogram.record(tookMs)
      if (done >= options.warmup + options.count || options.signal?.aborted === true) finish()
      else send()
    })
    socket.on('error', (error) => finish(error))
  })
}

export interface RoundTripSummary {
  count: number
  p50Us: number
  p99Us: number
}

/**
 * One round of the cross-core round trip: `echo-main.js client` run under `prefix` (taskset on
 * the load side's CPU) against the echo server on `port`, so both ends are pinned whatever this
 * process's own placement.
 */
export function runRoundTripClient(prefix: readonly string[], main: string, options: RoundTripOptions): Promise<RoundTripSummary> {
  const argv = [...prefix, process.execPath, main, 'client', String(options.port), String(options.warmup), String(options.count)]
  return new Promise((resolve, reject) => {
    execFile(argv[0] as string, argv.slice(1), { signal: options.signal, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`${error.message}${stderr === '' ? '' : `: ${stderr.trim().slice(-300)}`}`))
        return
      }
      try {
        const summary = JSON.parse(stdout) as RoundTripSummary
        if (!(summary.count > 0 && Number.isFinite(summary.p50Us) && Number.isFinite(summary.p99Us))) throw new Error(`unexpected output ${stdout.trim()}`)
        resolve(summary)
      } catch (parseError) {
        reject(parseError)
      }
    })
  })
}
