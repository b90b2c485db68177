import { describe, expect, test } from 'vitest'
import { copyResponseHeaders, prepareRequestHeaders, type ResponseHeaderFacts } from './headers.js'

const passthrough = { credentials: null, defaults: [] }

describe('prepareRequestHeaders', () => {
  test('keeps every end-to-end header in order, lower-cases names, drops hop-by-hop and host', () => {
    const out = prepareRequestHeaders([
      'Host', 'proxy.local',
      'Connection', 'keep-alive',
      'Keep-Alive', 'timeout=5',
      'Transfer-Encoding', 'chunked',
      'TE', 'trailers',
      'Upgrade', 'h2c',
      'Expect', '100-continue',
      'Proxy-Authorization', 'Basic x',
      'anthropic-beta', 'a-2024-01-01,b-2024-01-01',
      'Anthropic-Beta', 'c-2024-01-01',
      'X-Api-Key', 'sk',
      'X-Custom', 'v',
    ], passthrough)
    expect(out).toEqual([
      'anthropic-beta', 'a-2024-01-01,b-2024-01-01',
      'anthropic-beta', 'c-2024-01-01',
      'x-api-key', 'sk',
      'x-custom', 'v',
    ])
  })

  test('drops headers named by Connection', () => {
    expect(prepareRequestHeaders(['Connection', 'close, X-Secret', 'X-Secret', '1', 'x-keep', '2'], passthrough)).toEqual(['x-keep', '2'])
    // Any case and spacing, every line of a repeated name, several names; keep-alive alone drops nothing more.
    expect(prepareRequestHeaders(['x-a', '1', 'Connection', ' Keep-Alive ,X-A,, x-b ', 'X-B', '2', 'x-a', '3', 'x-c', '4'], passthrough)).toEqual(['x-c', '4'])
    expect(prepareRequestHeaders(['Connection', ' Keep-Alive', 'x-keep-alive-ish', '1'], passthrough)).toEqual(['x-keep-alive-ish', '1'])
  })

  test('managed credentials replace the client\'s', () => {
    const out = prepareRequestHeaders(['x-api-key', 'client', 'Authorization', 'Bearer t', 'a', 'b'], { credentials: ['x-api-key', 'upstream'], defaults: [] })
    expect(out).toEqual(['a', 'b', 'x-api-key', 'upstream'])
  })

  test('defaults are added only when absent', () => {
    const options = { credentials: null, defaults: ['anthropic-version', '2023-06-01'] }
    expect(prepareRequestHeaders(['a', 'b'], options)).toEqual(['a', 'b', 'anthropic-version', '2023-06-01'])
    expect(prepareRequestHeaders(['Anthropic-Version', '2026-10-21'], options)).toEqual(['anthropic-version', '2026-10-21'])
  })

  test('accept-encoding can be dropped', () => {
    expect(prepareRequestHeaders(['Accept-Encoding', 'gzip', 'a', 'b'], { ...passthrough, dropAcceptEncoding: true })).toEqual(['a', 'b'])
  })
})

describe('copyResponseHeaders', () => {
  test('copies bytes as latin1, drops hop-by-hop, and reads facts in the same pass', () => {
    const raw = ['Content-Type', 'text/event-stream; charset=utf-8', 'Connection', 'keep-alive', 'Transfer-Encoding', 'chunked',
      'request-id', 'req_1', 'Content-Encoding', 'gzip', 'x-odd', 'caf\u00e9'].map((value) => Buffer.from(value, 'latin1'))
    const facts: ResponseHeaderFacts = { isEventStream: false, contentEncoding: undefined, requestId: undefined, contentType: undefined, hasContentLength: false }
    expect(copyResponseHeaders(raw, facts)).toEqual([
      'Content-Type', 'text/event-stream; charset=utf-8', 'request-id', 'req_1', 'Content-Encoding', 'gzip', 'x-odd', 'caf\u00e9',
    ])
    expect(facts).toEqual({ isEventStream: true, contentEncoding: 'gzip', requestId: 'req_1', contentType: 'text/event-stream; charset=utf-8', hasContentLength: false })
  })

  test('string headers (the wire engine) are copied as they are; a content-length is kept and noted', () => {
    const facts: ResponseHeaderFacts = { isEventStream: false, contentEncoding: undefined, requestId: undefined, contentType: undefined, hasContentLength: false }
    expect(copyResponseHeaders(['content-type', 'application/json', 'Content-Length', '355', 'Keep-Alive', 'timeout=5'], facts))
      .toEqual(['content-type', 'application/json', 'Content-Length', '355'])
    expect(facts.hasContentLength).toBe(true)
    expect(facts.isEventStream).toBe(false)
  })
})
