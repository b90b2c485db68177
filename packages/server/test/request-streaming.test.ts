import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type RunningProxy, sleep, startProxy } from './helpers.js'

describe('large request bodies stream through without buffering', () => {
  const server = createServer()
  let proxy: RunningProxy
  let firstByteAt = 0
  let received = 0

  beforeAll(async () => {
    server.on('request', (incoming, response) => {
      incoming.on('data', (chunk: Buffer) => {
        if (received === 0) firstByteAt = performance.now()
        received += chunk.length
      })
      incoming.on('end', () => {
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(JSON.stringify({ received }))
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    proxy = await startProxy(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  })
  afterAll(async () => {
    await proxy.close()
    server.close()
  })

  test('a 4 MiB upload reaches the upstream while the client is still sending it', async () => {
    received = 0
    const chunk = Buffer.alloc(256 * 1024, 'a')
    let lastWriteAt = 0
    const body = (async function * () {
      for (let i = 0; i < 16; i++) {
        if (i === 15) lastWriteAt = performance.now()
        yield chunk
        await sleep(25)
      }
    })()
    const response = await request(`${proxy.url}/v1/files`, {
      method: 'POST',
      headers: { 'x-api-key': 'k', 'content-type': 'application/octet-stream', 'content-length': String(16 * chunk.length) },
      body,
    })
    expect(await response.body.json()).toEqual({ received: 16 * chunk.length })
    expect(firstByteAt).toBeGreaterThan(0)
    // The upstream saw bytes long before the client's last write: the proxy did not wait for the whole body.
    expect(lastWriteAt - firstByteAt).toBeGreaterThan(10 * 25)
  })
})
