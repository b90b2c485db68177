import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const EVENTS = 20
const PACE_MS = 40

function startUpstream (): Promise<Server> {
  const server = createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_slow' })
      let n = 0
      const timer = setInterval(() => {
        response.write(`event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${n}"}}\n\n`)
        if (++n === EVENTS) {
          clearInterval(timer)
          response.end('event: message_stop\ndata: {"type":"message_stop"}\n\n')
        }
      }, PACE_MS)
      response.on('close', () => clearInterval(timer))
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

interface Proxy { child: ChildProcess, url: string, output: () => string }

async function startProxy (upstreamUrl: string, extraEnv: Record<string, string> = {}): Promise<Proxy> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ANTHROPIC_UPSTREAM_URL: upstreamUrl, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '10000', APT_ENV_FILE: '/nonexistent', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  for (let i = 0; i < 200; i++) {
    const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
    if (match !== null) return { child, url: match[1] as string, output: () => output }
    if (child.exitCode !== null) break
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  child.kill('SIGKILL')
  throw new Error(`proxy did not start:\n${output}`)
}

describe('the proxy process (node apps/proxy/dist/main.js)', () => {
  let upstream: Server
  let upstreamUrl: string
  beforeAll(async () => {
    upstream = await startUpstream()
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  })
  afterAll(() => {
    upstream.closeAllConnections()
    upstream.close()
  })

  test('SIGTERM: the live stream finishes, new connections are refused, exit code 0, final stats logged', async () => {
    const proxy = await startProxy(upstreamUrl)
    const response = await fetch(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: '{"stream":true}' })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let text = Buffer.from((await reader.read()).value ?? []).toString()
    const exited = once(proxy.child, 'exit')
    proxy.child.kill('SIGTERM')
    await new Promise((resolve) => setTimeout(resolve, 100))
    await expect(fetch(`${proxy.url}/health`)).rejects.toThrow()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
    }
    expect(text.match(/event: content_block_delta\n/g)).toHaveLength(EVENTS)
    expect(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true)
    const [code] = await exited
    expect(code).toBe(0)
    expect(proxy.output()).toContain('draining: refusing new work')
    expect(proxy.output()).toContain('shutdown complete')
  })

  test('a second signal exits at once, even with a stream in flight', async () => {
    const proxy = await startProxy(upstreamUrl)
    const response = await fetch(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: '{"stream":true}' })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    const exited = once(proxy.child, 'exit')
    proxy.child.kill('SIGTERM')
    await new Promise((resolve) => setTimeout(resolve, 50))
    proxy.child.kill('SIGTERM')
    const [code] = await exited
    expect(code).toBe(1)
    expect(proxy.output()).toContain('second signal')
    await reader.cancel().catch(() => {})
  })

  test('APT_WORKERS=2: two workers share the port; SIGTERM drains the live stream and the primary exits 0', async () => {
    const proxy = await startProxy(upstreamUrl, { APT_WORKERS: '2' })
    // Wait for the second worker too.
    for (let i = 0; i < 200 && (proxy.output().match(/Server listening at http:\/\/127\.0\.0\.1/g) ?? []).length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const streams = await Promise.all([0, 1, 2, 3].map(async () => {
      const response = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: '{"stream":true}', reset: true })
      return response.body.text()
    }))
    for (const text of streams) expect(text.match(/event: content_block_delta\n/g)).toHaveLength(EVENTS)
    const live = await request(`${proxy.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: '{"stream":true}', reset: true })
    const exited = once(proxy.child, 'exit')
    proxy.child.kill('SIGTERM')
    const text = await live.body.text()
    expect(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true)
    const [code] = await exited
    expect(code).toBe(0)
    const pids = new Set(proxy.output().split('\n').filter((line) => line.includes('"route":"messages"')).map((line) => (JSON.parse(line) as { pid: number }).pid))
    expect(pids.size).toBe(2)
    expect(proxy.output()).toContain('all workers stopped')
  })

  test('invalid configuration: every problem listed, exit code 78', async () => {
    const child = spawn(process.execPath, [MAIN], {
      env: { ...process.env, PORT: 'nope', ANTHROPIC_MAX_CONNECTIONS: '-1', APT_ENV_FILE: '/nonexistent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const [code] = await once(child, 'exit')
    expect(code).toBe(78)
    expect(stderr).toContain('2 problems')
    expect(stderr).toContain("PORT must be an integer between 0 and 65535, got 'nope'")
    expect(stderr).toContain('ANTHROPIC_MAX_CONNECTIONS')
  })
})
