import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'

const run = promisify(execFile)
const SERVER = new URL('../dist/index.js', import.meta.url).href

/**
 * Builds a server in a child process with `perf_hooks.monitorEventLoopDelay` wrapped, and
 * reports every sampler it asked for: its resolution and the turn of the loop it was made in.
 */
async function samplers (options: string): Promise<{ resolution: number | undefined, turn: number }[]> {
  const script = `
    import perfHooks from 'node:perf_hooks'
    import { syncBuiltinESMExports } from 'node:module'
    const calls = []
    let turn = 0
    const original = perfHooks.monitorEventLoopDelay
    perfHooks.monitorEventLoopDelay = (options) => { calls.push({ resolution: options?.resolution, turn }); return original(options) }
    syncBuiltinESMExports()
    const { buildServer } = await import(${JSON.stringify(SERVER)})
    setImmediate(() => { turn++ })
    const app = buildServer({ upstream: { origin: 'http://127.0.0.1:9' }, logger: false, ${options} })
    await app.close()
    process.stdout.write(JSON.stringify(calls))
  `
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 })
  return JSON.parse(stdout)
}

describe('event-loop delay samplers', () => {
  test('the monitor and the Prometheus metrics sample at one resolution, made in one turn of the loop: one timer wake-up serves both', async () => {
    const calls = await samplers('')
    expect(calls).toHaveLength(2)
    expect(calls.map((call) => call.resolution)).toEqual([20, 20])
    expect(new Set(calls.map((call) => call.turn)).size).toBe(1)
  })

  test("the monitor's own resolution is the metrics' too; without the monitor, the metrics still sample at 20 ms", async () => {
    expect((await samplers('monitor: { eventLoopResolutionMs: 50 }')).map((call) => call.resolution)).toEqual([50, 50])
    expect((await samplers('monitor: false')).map((call) => call.resolution)).toEqual([20])
  })
})
