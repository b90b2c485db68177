import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { runClosedLoop } from '../src/load-generator.js'
import { messageRequest } from '../src/message-request.js'

const servers: Server[] = []

afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    server.close()
  }
})

/** An upstream that answers every request at once and counts requests. */
async function serve(): Promise<{ url: string, requests: () => number }> {
  let requests = 0
  const server = createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      requests++
      response.end('{"type":"message"}')
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests }
}

describe('runClosedLoop warm-up until a steady state', () => {
  it('opens the measured window only once the steady check says so, with the traffic flowing meanwhile', async () => {
    const upstream = await serve()
    const answers = [false, false, false, true]
    const asked: number[] = []
    let requestsAtOpen = -1
    const result = await runClosedLoop({
      url: upstream.url,
      concurrency: 4,
      request: messageRequest({ stream: false }),
      streaming: false,
      warmup: {
        ms: 50,
        everyWorker: true,
        steady: () => {
          asked.push(upstream.requests())
          return answers.shift() ?? true
        },
        steadyEveryMs: 50,
        steadyMaxMs: 10_000,
      },
      measure: { ms: 100 },
      atWindowStart: () => { requestsAtOpen = upstream.requests() },
    })
    // The first answer is only the reference; then three polls said "not yet" before the window opened.
    expect(asked).toHaveLength(4)
    expect(answers).toEqual([])
    // Requests went on between the polls, and the window opened after the last one.
    expect(asked[3] as number).toBeGreaterThan(asked[0] as number)
    expect(requestsAtOpen).toBeGreaterThanOrEqual(asked[3] as number)
    expect(result.completed).toBeGreaterThan(0)
    expect(result.errors).toBe(0)
  })

  it('gives up waiting after steadyMaxMs: a target that never settles is still measured', async () => {
    const upstream = await serve()
    let polls = 0
    const started = performance.now()
    let openedAfterMs = 0
    const result = await runClosedLoop({
      url: upstream.url,
      concurrency: 2,
      request: messageRequest({ stream: false }),
      streaming: false,
      warmup: { ms: 10, steady: () => { polls++; return false }, steadyEveryMs: 20, steadyMaxMs: 200 },
      measure: { ms: 50 },
      atWindowStart: () => { openedAfterMs = performance.now() - started },
    })
    expect(openedAfterMs).toBeGreaterThanOrEqual(200)
    expect(polls).toBeGreaterThan(2)
    expect(result.completed).toBeGreaterThan(0)
  })
})
