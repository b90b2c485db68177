import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Anthropic from '@anthropic-ai/sdk'
import { createEmulator, type Emulator } from '@apt/bench'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { gzipSync } from 'node:zlib'
import { type RunningProxy, sleep, startFakeUpstream, startProxy } from './helpers.js'

const run = promisify(execFile)
const PARAMS = { model: 'claude-opus-4-8', max_tokens: 64, messages: [{ role: 'user' as const, content: 'Count the tokens, please.' }] }

function metricValue (text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  if (line === undefined) throw new Error(`series not found: ${series}\n${text.split('\n').filter((l) => l.startsWith(series.split('{')[0] as string)).join('\n')}`)
  return Number(line.slice(series.length + 1))
}

describe('observability: usage tap, overhead, Prometheus', () => {
  let emulator: Emulator
  let proxy: RunningProxy
  let client: Anthropic

  beforeAll(async () => {
    emulator = await createEmulator()
    proxy = await startProxy(emulator.url, { metrics: { processMetrics: true } })
    client = new Anthropic({ baseURL: proxy.url, apiKey: 'k', maxRetries: 0 })
  })
  afterAll(async () => {
    await proxy.close()
    await emulator.close()
  })

  test.each([
    ['stream', undefined], ['stream', 'gzip'], ['stream', 'br'], ['json', undefined], ['json', 'gzip'],
  ] as const)('%s (%s): token counts in metrics match what the upstream sent', async (kind, encoding) => {
    const model = `claude-test-${kind}-${encoding ?? 'plain'}`
    const headers: Record<string, string> = { 'x-emulator-deltas': '9', 'x-emulator-cache-read': '1234', 'x-emulator-cache-creation': '56', 'x-emulator-delta-usage': 'full' }
    if (encoding !== undefined) headers['x-emulator-encoding'] = encoding
    const message = kind === 'stream'
      ? await client.messages.stream({ ...PARAMS, model }, { headers }).finalMessage()
      : await client.messages.create({ ...PARAMS, model }, { headers })
    await sleep(50) // compressed taps finish decoding after the response ends
    const text = (await proxy.app.inject('/metrics')).body
    expect(metricValue(text, `apt_tokens_total{type="input",model="${model}"}`)).toBe(message.usage.input_tokens)
    expect(metricValue(text, `apt_tokens_total{type="output",model="${model}"}`)).toBe(message.usage.output_tokens)
    expect(metricValue(text, `apt_tokens_total{type="cache_read",model="${model}"}`)).toBe(1234)
    expect(metricValue(text, `apt_tokens_total{type="cache_creation",model="${model}"}`)).toBe(56)
    expect(message.usage.cache_read_input_tokens).toBe(1234)
    const json = (await proxy.app.inject('/anthropic/metrics')).json()
    expect(json.usage_metrics.by_model[model]).toEqual({
      requests: 1, input: message.usage.input_tokens, output: message.usage.output_tokens, cache_creation: 56, cache_read: 1234,
    })
    if (kind === 'stream') {
      expect(metricValue(text, `apt_time_to_first_token_seconds_count{model="${model}"}`)).toBe(1)
    }
  })

  test('time to first token follows the upstream\'s pacing, and the log line carries it', async () => {
    const model = 'claude-ttft-check'
    await client.messages.stream({ ...PARAMS, model }, { headers: { 'x-emulator-pace-ms': '60', 'x-emulator-deltas': '3' } }).finalMessage()
    await sleep(20)
    const line = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.model === model)
    expect(line).toBeDefined()
    // message_start, content_block_start, ping, then the first delta: three paced gaps before it.
    expect(line?.ttft_ms as number).toBeGreaterThanOrEqual(3 * 60 * 0.8)
    expect(line?.ttft_ms as number).toBeLessThan(line?.duration_ms as number)
    expect(line?.output_tokens).toBe(3)
  })

  test('a mid-stream error event is counted by type', async () => {
    await client.messages.stream(PARAMS, { headers: { 'x-emulator-error-after': '3' } }).finalMessage().catch(() => {})
    const text = (await proxy.app.inject('/metrics')).body
    expect(metricValue(text, 'apt_stream_errors_total{type="overloaded_error"}')).toBeGreaterThanOrEqual(1)
  })

  test('unknown model names cannot blow up label cardinality', async () => {
    for (let i = 0; i < 40; i++) await client.messages.create({ ...PARAMS, model: `made-up-${i}` })
    const text = (await proxy.app.inject('/metrics')).body
    const models = new Set([...text.matchAll(/apt_tokens_total\{type="input",model="([^"]+)"\}/g)].map((m) => m[1]))
    expect(models.size).toBeLessThanOrEqual(33)
    expect(models.has('other')).toBe(true)
  })

  test('proxy overhead is recorded (histogram, server-timing header, monitor window)', async () => {
    const response = await request(`${proxy.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify(PARAMS),
    })
    await response.body.dump()
    const timing = String(response.headers['server-timing'])
    expect(timing).toMatch(/^proxy;desc="apt overhead";dur=\d+\.\d{3}$/)
    expect(Number(timing.split('dur=')[1])).toBeGreaterThan(0)
    const text = (await proxy.app.inject('/metrics')).body
    expect(metricValue(text, 'apt_proxy_overhead_seconds_count{route="messages"}')).toBeGreaterThan(0)
    const snapshot = (await proxy.app.inject('/anthropic/metrics')).json()
    const window = snapshot.monitor.windows[0]
    expect(window.count).toBeGreaterThan(0)
    expect(window.overheadUs.p50).toBeGreaterThan(0)
    expect(window.durationMs.p99).toBeGreaterThan(0)
    expect(snapshot.monitor.alerts.map((a: { rule: { id: string } }) => a.rule.id)).toContain('p95-latency')
  })

  test('reuse counters match the upstream\'s own connection count', async () => {
    const fresh = await createEmulator()
    const counted = await startProxy(fresh.url)
    try {
      const c = new Anthropic({ baseURL: counted.url, apiKey: 'k', maxRetries: 0 })
      await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < 10; i++) await c.messages.create(PARAMS) }))
      const stats = counted.app.apt.stats()
      expect(stats.misses).toBe(fresh.stats().connections)
      expect(stats.hits + stats.misses).toBe(fresh.stats().requests)
      const text = (await counted.app.inject('/metrics')).body
      expect(metricValue(text, 'apt_upstream_requests_total{socket="new"}')).toBe(fresh.stats().connections)
      expect(metricValue(text, 'apt_upstream_connections_opened_total')).toBe(fresh.stats().connections)
    } finally {
      await counted.close()
      await fresh.close()
    }
  })

  test.each([['plain'], ['gzip']] as const)('usage of a %s JSON body that arrives in two reads, with other responses read in between', async (encoding) => {
    // The wire engine reads every upstream socket into one shared buffer and hands the body on
    // as views of it: the usage tap must keep copies, or the first half of this body is
    // overwritten by the responses read before its second half arrives.
    const model = `claude-split-${encoding}`
    const message = JSON.stringify({
      id: 'msg_split', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'x'.repeat(300) }],
      stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 4321, output_tokens: 87, cache_read_input_tokens: 5, cache_creation_input_tokens: 6 },
    })
    const body = encoding === 'gzip' ? gzipSync(message) : Buffer.from(message)
    const noise = Buffer.from(JSON.stringify({ id: 'msg_noise', type: 'message', model: 'claude-noise', content: [{ type: 'text', text: 'n'.repeat(600) }], usage: { input_tokens: 1, output_tokens: 1 } }))
    const upstream = await startFakeUpstream((_request, response, requestBody) => {
      const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': 0 }
      if (!requestBody.includes(model)) {
        response.writeHead(200, { ...headers, 'content-length': noise.length })
        response.end(noise)
        return
      }
      if (encoding === 'gzip') headers['content-encoding'] = 'gzip'
      response.writeHead(200, { ...headers, 'content-length': body.length })
      const half = Math.floor(body.length / 2)
      response.write(body.subarray(0, half))
      setTimeout(() => response.end(body.subarray(half)), 60)
    })
    const split = await startProxy(upstream.url)
    try {
      const post = (name: string) => request(`${split.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ ...PARAMS, model: name }),
      }).then(async (response) => Buffer.from(await response.body.arrayBuffer()))
      const pending = post(model)
      await sleep(20)
      // Read while the split body waits for its second half, on other upstream connections.
      const others = await Promise.all(Array.from({ length: 8 }, () => post('claude-noise')))
      for (const other of others) expect(other.equals(noise)).toBe(true)
      expect((await pending).equals(body)).toBe(true)
      await sleep(50) // a compressed tap finishes decoding after the response ends
      const text = (await split.app.inject('/metrics')).body
      expect(metricValue(text, `apt_tokens_total{type="input",model="${model}"}`)).toBe(4321)
      expect(metricValue(text, `apt_tokens_total{type="output",model="${model}"}`)).toBe(87)
    } finally {
      await split.close()
      await upstream.close()
    }
  })

  test('promtool check metrics passes on a live /metrics', async () => {
    const text = (await proxy.app.inject('/metrics')).body
    const file = join(mkdtempSync(join(tmpdir(), 'apt-prom-')), 'metrics.txt')
    writeFileSync(file, text)
    const { stdout, stderr } = await run('sh', ['-c', `promtool check metrics < ${file}`])
    expect(`${stdout}${stderr}`.trim()).toBe('')
  })
})
