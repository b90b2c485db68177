import { Buffer } from 'node:buffer'
import { describe, expect, test } from 'vitest'
import { seededRandom } from '../../../test/support/seeded-random.js'
import { copyResponseHeaders, prepareRequestHead, prepareRequestHeaders, RequestHead, type ResponseHeaderFacts, headLength, writeEncodedHead, writeHead } from './headers.js'

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

  test('drops every hop-by-hop and proxy-owned name in any case, and nothing else of the same length', () => {
    const dropped = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
      'proxy-authorization', 'proxy-authenticate', 'host', 'expect', 'http2-settings']
    const raw: string[] = []
    for (const name of dropped) raw.push(name, 'x', name.toUpperCase(), 'x')
    // Names as long as dropped ones (the SDK's own among them), and the optional drops left on.
    const kept = ['user-agent', 'x-stainless-lang', 'anthropic-version', 'tt', 'trailed', 'upgraded', 'x-stainless-runtime',
      'proxy-authenticatf', 'hosT-', 'accept', 'x-stainless-os', 'x-api-key', 'authorization', 'accept-encoding']
    for (const name of kept) raw.push(name, 'v')
    expect(prepareRequestHeaders(raw, passthrough)).toEqual(kept.flatMap((name) => [name.toLowerCase(), 'v']))
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

  test('a client\'s Connection header cannot remove the proxy\'s own credentials or defaults', () => {
    const managed = prepareRequestHeaders(['Connection', 'x-api-key, anthropic-beta', 'anthropic-beta', 'x', 'a', 'b'], { credentials: ['x-api-key', 'upstream'], defaults: ['anthropic-version', '2023-06-01'] })
    expect(managed).toEqual(['a', 'b', 'x-api-key', 'upstream', 'anthropic-version', '2023-06-01'])
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

describe('prepareRequestHead', () => {
  const { random, pick } = seededRandom(54)
  const NAMES = [
    'Host', 'host', 'Connection', 'Keep-Alive', 'Proxy-Connection', 'TE', 'Trailer', 'Transfer-Encoding', 'Upgrade',
    'Proxy-Authorization', 'Proxy-Authenticate', 'Expect', 'HTTP2-Settings', 'x-api-key', 'X-Api-Key', 'Authorization',
    'Accept-Encoding', 'anthropic-version', 'Anthropic-Version', 'anthropic-beta', 'Content-Length', 'content-type',
    'X-Stainless-OS', 'user-agent', 'tE', 'hostx', 'x-api-keys', 'accept-encodings', 'a', 'Z_9-~!',
  ]
  const VALUES = ['keep-alive', 'Keep-Alive', 'close', 'x-stainless-os', 'gzip, deflate', '2023-06-01', 'sk-ant-xyz', '', 'a  b', '{"x": 1}']

  test('the bytes are what prepareRequestHeaders makes of the same lines, encoded as writeHead encodes them', () => {
    let compared = 0
    for (let round = 0; round < 3000; round++) {
      // A head of random lines, with the offsets the front's scan notes.
      let text = 'POST /v1/messages HTTP/1.1\r\n'
      const lines: number[] = []
      const raw: string[] = []
      // Now and then more lines than prepareRequestHead's scratch starts with.
      for (let n = random(10) === 0 ? 60 + random(60) : random(14); n > 0; n--) {
        const name = pick(NAMES)
        const value = name.toLowerCase() === 'connection' ? pick(['keep-alive', 'Keep-Alive', 'close', 'x-stainless-os', 'keep-alive, anthropic-beta']) : pick(VALUES)
        const before = pick(['', ' ', '\t '])
        const nameStart = text.length
        text += `${name}:${before}`
        const valueStart = text.length
        text += `${value}${pick(['', ' '])}\r\n`
        lines.push(nameStart, nameStart + name.length, valueStart, valueStart + value.length)
        raw.push(name, value)
      }
      const bytes = Buffer.from(`${text}\r\n`, 'latin1')
      const options = {
        credentials: random(2) === 0 ? null : ['x-api-key', 'sk-upstream'],
        defaults: random(2) === 0 ? [] : ['anthropic-version', '2023-06-01', 'x-default', 'd'],
        dropAcceptEncoding: random(3) === 0,
      }
      const head = prepareRequestHead(bytes, lines, options)
      const list = prepareRequestHeaders(raw, options)
      const tokens = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'connection').map((value) => value.toLowerCase())
      if (tokens.some((value) => value !== 'keep-alive' && value !== 'close')) {
        // Names listed by Connection are the string path's to remove: the caller falls back to it.
        expect(head).toBeNull()
        continue
      }
      expect(head).toBeInstanceOf(RequestHead)
      const encoded = head as RequestHead
      expect(encoded.list()).toEqual(list)
      expect(encoded.hasContentLength).toBe(list.includes('content-length'))
      // The whole head as the wire engine writes it, both ways.
      const fromList = Buffer.alloc(headLength('POST /v1/x HTTP/1.1\r\n', 'host: up\r\n', list, '', '\r\n'))
      writeHead(fromList, 'POST /v1/x HTTP/1.1\r\n', 'host: up\r\n', list, '', '\r\n')
      const fromBlock = Buffer.alloc(fromList.length)
      expect(writeEncodedHead(fromBlock, 'POST /v1/x HTTP/1.1\r\n', 'host: up\r\n', encoded.block, '')).toBe(fromList.length)
      expect(fromBlock.toString('latin1')).toBe(fromList.toString('latin1'))
      compared++
    }
    expect(compared).toBeGreaterThan(1500)
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

describe('writeHead', () => {
  test('encodes the same bytes as the head string written as latin1, into a buffer with room after it', () => {
    // Values as the parsers make them: any byte 0x00-0xff is one latin1 character.
    const opaque = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0x80]).toString('latin1')
    const headers = ['content-type', 'application/json', 'x-opaque', opaque, 'request-id', 'req_1', 'empty', '']
    const statusLine = 'HTTP/1.1 200 OK\r\n'
    const keepAlive = 'connection: keep-alive\r\nkeep-alive: timeout=72\r\n'
    const expected = Buffer.from(`${statusLine}content-type: application/json\r\nx-opaque: ${opaque}\r\nrequest-id: req_1\r\nempty: \r\n${keepAlive}\r\n`, 'latin1')
    const length = headLength(statusLine, '', headers, keepAlive, '\r\n')
    expect(length).toBe(expected.length)
    const target = Buffer.alloc(length + 3, 0x2a)
    expect(writeHead(target, statusLine, '', headers, keepAlive, '\r\n')).toBe(length)
    expect(target.subarray(0, length)).toEqual(expected)
    expect(target.subarray(length).toString()).toBe('***')
    expect(target.includes(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0x80]))).toBe(true)
  })

  test('no headers: the status line and the closing lines alone', () => {
    const target = Buffer.alloc(headLength('HTTP/1.1 204 No Content\r\n', '', [], '', 'transfer-encoding: chunked\r\n\r\n'))
    writeHead(target, 'HTTP/1.1 204 No Content\r\n', '', [], '', 'transfer-encoding: chunked\r\n\r\n')
    expect(target.toString('latin1')).toBe('HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n')
    // A request head: the request line and the host line lead.
    const request = Buffer.alloc(headLength('POST /v1/messages HTTP/1.1\r\n', 'host: api.anthropic.com\r\n', ['x-api-key', 'k'], 'connection: close\r\n', '\r\n'))
    writeHead(request, 'POST /v1/messages HTTP/1.1\r\n', 'host: api.anthropic.com\r\n', ['x-api-key', 'k'], 'connection: close\r\n', '\r\n')
    expect(request.toString('latin1')).toBe('POST /v1/messages HTTP/1.1\r\nhost: api.anthropic.com\r\nx-api-key: k\r\nconnection: close\r\n\r\n')
  })
})
