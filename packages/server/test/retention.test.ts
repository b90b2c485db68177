import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { createUpstreamClient, type ForwardRequest, type UpstreamClient } from '@apt/adapter'
import { buildServer } from '@apt/server'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, test } from 'vitest'
import { type FakeUpstream, sleep, startFakeUpstream } from './helpers.js'
import { collectedByGc } from '../../../test/support/collected-by-gc.js'

interface Held {
  /** The upstream header list the proxy handler prepared for the request. */
  prepared: WeakRef<string[]>
  /** How many header lines the client's request still carried (its `rawHeaders`) when it was forwarded. */
  rawLength: number
}

/** The real upstream client, with each forwarded request's header lists noted as weak references. */
function noting (client: UpstreamClient, held: Held[]): UpstreamClient {
  return new Proxy(client, {
    get (target, key) {
      if (key === 'forward') {
        return (request: ForwardRequest, response: ServerResponse, callback: Parameters<UpstreamClient['forward']>[2], options: Parameters<UpstreamClient['forward']>[3]) => {
          held.push({ prepared: new WeakRef(request.headers as string[]), rawLength: response.req.rawHeaders.length })
          target.forward(request, response, callback, options)
        }
      }
      const value = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

describe('an open stream does not hold its request\'s headers', () => {
  let upstream: FakeUpstream | undefined
  let app: FastifyInstance | undefined
  let client: UpstreamClient | undefined

  let finish: (() => void) | undefined

  afterEach(async () => {
    finish?.()
    finish = undefined
    await app?.close()
    await client?.close()
    await upstream?.close()
  })

  for (const front of [true, false]) {
    test(`${front ? 'front' : 'node:http'}: both header lists are collected while the stream is still open`, async () => {
      upstream = await startFakeUpstream((_request, response) => {
        response.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_retention' })
        response.write('event: message_start\ndata: {"type":"message_start","message":{"model":"claude-test","usage":{"input_tokens":3,"output_tokens":1}}}\n\n')
        finish = () => response.end('event: message_stop\ndata: {"type":"message_stop"}\n\n')
      })
      client = createUpstreamClient({ origin: upstream.url })
      const held: Held[] = []
      const logs: string[] = []
      app = buildServer({
        logger: { level: 'info' },
        logStream: new Writable({ write (chunk: Buffer, _encoding, callback) { logs.push(chunk.toString('utf8')); callback() } }),
        metrics: { processMetrics: false },
        front,
        upstream: noting(client, held),
      })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = app.server.address() as AddressInfo

      const response = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': 'sk-ant-retention', 'anthropic-version': '2023-06-01', 'content-type': 'application/json', 'x-padding': 'p'.repeat(2000) },
        body: JSON.stringify({ model: 'claude-test', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      })
      expect(response.status).toBe(200)
      const reader = (response.body as ReadableStream<Uint8Array>).getReader()
      const decoder = new TextDecoder()
      let text = decoder.decode((await reader.read()).value)
      expect(text).toContain('event: message_start')
      expect(held).toHaveLength(1)
      const entry = held[0] as Held

      // The prepared list is the proxy's own: nothing needs it once the response head is out.
      expect(await collectedByGc(entry.prepared)).toBe(true)
      // node:http keeps an IncomingMessage's rawHeaders for the request's life; the front lets go of
      // its own before forwarding (a FrontResponse keeps its request to the end), and the upstream
      // still received every line.
      expect(entry.rawLength === 0).toBe(front)
      const received = (upstream.requests[0] as FakeUpstream['requests'][number]).rawHeaders
      expect(received[received.indexOf('x-padding') + 1]).toBe('p'.repeat(2000))
      expect(received[received.indexOf('x-api-key') + 1]).toBe('sk-ant-retention')

      // The stream is still whole and still accounted for.
      ;(finish as () => void)()
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        text += decoder.decode(value, { stream: true })
      }
      expect(text).toContain('event: message_stop')
      await sleep(20)
      const line = logs.join('').split('\n').find((candidate) => candidate.includes('"msg":"request"'))
      expect(line).toContain('"status":200')
      expect(line).toContain('"model":"claude-test"')
      expect(line).toContain('"input_tokens":3')
      expect(line).not.toContain('sk-ant-retention')
    })
  }
})
