#!/usr/bin/env node
import type { AddressInfo } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import { createEmulator } from '@apt/bench'
import { buildServer } from '@apt/server'

/**
 * `pnpm demo`: the proxy in front of the embedded Anthropic emulator, and the
 * official SDK streaming a reply through it to the terminal. No key, no network.
 */
async function demo (): Promise<void> {
  const emulator = await createEmulator()
  const app = buildServer({ upstream: { origin: emulator.url }, logger: { level: 'warn' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const proxyUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  process.stdout.write(`emulated Anthropic API: ${emulator.url}\napt proxy:              ${proxyUrl}\n\n`)

  const client = new Anthropic({
    baseURL: proxyUrl,
    apiKey: 'demo-key',
    // Emulator controls travel as headers, which the proxy forwards untouched.
    defaultHeaders: { 'x-emulator-deltas': '40', 'x-emulator-pace-ms': '35', 'x-emulator-delta-size': '6' },
  })
  process.stdout.write('client.messages.stream() through the proxy:\n\n')
  const stream = client.messages.stream({
    model: 'claude-opus-4-8',
    max_tokens: 256,
    messages: [{ role: 'user', content: 'Say hello through the proxy.' }],
  })
  stream.on('text', (text) => { process.stdout.write(text) })
  const message = await stream.finalMessage()
  process.stdout.write(`\n\nstop_reason=${message.stop_reason} input_tokens=${message.usage.input_tokens} output_tokens=${message.usage.output_tokens}\n`)

  const metrics = app.apt.metricsSnapshot() as { adapter_metrics: { connection_stats: unknown } }
  process.stdout.write(`proxy connection stats: ${JSON.stringify(metrics.adapter_metrics.connection_stats)}\n`)
  await app.close()
  await emulator.close()
}

demo().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
