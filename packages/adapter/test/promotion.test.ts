import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'

const ADAPTER = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const REQUESTS = 12_000

/**
 * A child process with a node:http front forwarding every request through the adapter's wire
 * engine to a node:http upstream, loaded by 32 raw keep-alive connections. V8 prints one
 * `--trace-gc-nvp` line per GC on stdout; the child prints how many requests completed.
 */
const CHILD = `
import { createServer } from 'node:http'
import { connect } from 'node:net'
import { once } from 'node:events'
const { createUpstreamClient } = await import(process.argv[1])
const total = Number(process.argv[2])
const BODY = '{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1,"output_tokens":1}}'
const upstream = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) })
  response.end(BODY)
})
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
const client = createUpstreamClient({ origin: 'http://127.0.0.1:' + upstream.address().port, engine: 'wire' })
const front = createServer((request, response) => {
  client.forward({ method: request.method, path: request.url, headers: [], body: null }, response, () => {})
})
front.listen(0, '127.0.0.1')
await once(front, 'listening')
const REQUEST = 'GET /v1/models HTTP/1.1\\r\\nhost: apt\\r\\n\\r\\n'
function responseEnd (text) {
  const head = text.indexOf('\\r\\n\\r\\n')
  if (head === -1) return -1
  const length = Number(/content-length: (\\d+)/i.exec(text.slice(0, head))[1])
  return text.length >= head + 4 + length ? head + 4 + length : -1
}
let sent = 0
let done = 0
await new Promise((resolve) => {
  for (let i = 0; i < 32; i++) {
    const socket = connect(front.address().port, '127.0.0.1')
    let pending = ''
    const next = () => { if (sent < total) { sent++; socket.write(REQUEST) } else socket.end() }
    socket.on('connect', next)
    socket.on('data', (data) => {
      pending += data.toString('latin1')
      for (let end = responseEnd(pending); end !== -1; end = responseEnd(pending)) {
        pending = pending.slice(end)
        if (++done === total) resolve()
        next()
      }
    })
  }
})
await client.close()
front.close()
upstream.close()
process.stdout.write('COMPLETED ' + done + '\\n')
`

describe('what the young generation promotes', () => {
  test('completed requests are not kept alive across scavenges: under load, well under 1 KB a request reaches the old generation', async () => {
    // 4 MiB semi-spaces, the proxy's own ceiling (APT_MAX_SEMI_SPACE_MB): a scavenge every ~200 requests.
    const { stdout } = await promisify(execFile)(process.execPath, ['--trace-gc-nvp', '--max-semi-space-size=4', '--input-type=module', '-e', CHILD, ADAPTER, String(REQUESTS)], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 })
    expect(stdout).toContain(`COMPLETED ${REQUESTS}`)
    let scavenges = 0
    let promoted = 0
    for (const line of stdout.split('\n')) {
      if (!line.includes(' gc=s ')) continue
      scavenges++
      promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0)
    }
    expect(scavenges).toBeGreaterThan(20)
    // A running-exchanges Set (add and delete per request) kept ~2 KB of every request alive
    // until the next full GC: V8 links a Set's outgrown tables, entries and all (change 33).
    // Start-up's own promotion is part of this figure, spread over the requests.
    expect(promoted / REQUESTS).toBeLessThan(1024)
  })
})
