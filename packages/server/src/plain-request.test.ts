import { Buffer } from 'node:buffer'
import { describe, expect, test } from 'vitest'
import { HTTP_METHODS, HTTPParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageComplete } from '@apt/adapter/llhttp'
import { type PlainRequest, scanPlainRequest } from './plain-request.js'

const MAX_HEAD = 16_384

interface Parsed {
  /** One whole request, every byte read, no error. */
  whole: boolean
  method: string | undefined
  url: string
  headers: string[]
  body: Buffer
  keepAlive: boolean
  upgrade: boolean
  version: string
}

/** What llhttp (Node's binding, as the front drives it, strict) reads from `bytes` given in one piece. */
function llhttp (bytes: Buffer): Parsed {
  const parser = new HTTPParser()
  parser.initialize(HTTPParser.REQUEST, {}, MAX_HEAD, HTTPParser.kLenientNone)
  const parsed: Parsed = { whole: false, method: undefined, url: '', headers: [], body: Buffer.alloc(0), keepAlive: false, upgrade: false, version: '' }
  const pieces: Buffer[] = []
  let messages = 0
  parser[kOnHeaders] = (headers: string[], url: string) => {
    parsed.headers.push(...headers)
    parsed.url += url
  }
  parser[kOnHeadersComplete] = (major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
    if (headers !== undefined) parsed.headers.push(...headers)
    if (url !== undefined) parsed.url += url
    parsed.method = HTTP_METHODS[method]
    parsed.version = `${major}.${minor}`
    parsed.upgrade = upgrade
    parsed.keepAlive = keepAlive
    return 0
  }
  parser[kOnBody] = (chunk: Buffer) => { pieces.push(Buffer.from(chunk)) }
  parser[kOnMessageComplete] = () => { messages++ }
  const result = parser.execute(bytes)
  parsed.body = Buffer.concat(pieces)
  parsed.whole = result === bytes.length && messages === 1 && parser.duration() === 0
  parser.close()
  return parsed
}

/** What the scan reads, in llhttp's terms; null when it declines. */
function scanned (bytes: Buffer): Parsed | null {
  const out: PlainRequest = { method: '', targetStart: 0, targetEnd: 0, headEnd: 0, contentLength: 0, lines: [] }
  if (!scanPlainRequest(bytes, bytes.length, MAX_HEAD, out)) return null
  const head = bytes.toString('latin1', 0, out.headEnd)
  const headers: string[] = []
  for (let k = 0; k < out.lines.length; k += 4) {
    headers.push(head.slice(out.lines[k], out.lines[k + 1]), head.slice(out.lines[k + 2], out.lines[k + 3]))
  }
  return {
    whole: true,
    method: out.method,
    url: head.slice(out.targetStart, out.targetEnd),
    headers,
    body: bytes.subarray(out.headEnd, out.headEnd + out.contentLength),
    keepAlive: true,
    upgrade: false,
    version: '1.1',
  }
}

// mulberry32
function generator (seed: number): (n: number) => number {
  let state = seed
  return (n) => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

const SDK_HEADERS: [string, string][] = [
  ['host', 'api.anthropic.com'], ['accept', 'application/json'], ['anthropic-version', '2023-06-01'],
  ['content-type', 'application/json'], ['user-agent', 'Anthropic/JS 0.52.0'], ['x-api-key', 'sk-ant-api03-abc_DEF-123'],
  ['x-stainless-arch', 'x64'], ['x-stainless-lang', 'js'], ['x-stainless-os', 'Linux'], ['x-stainless-retry-count', '0'],
  ['x-stainless-timeout', '600'], ['connection', 'keep-alive'], ['accept-encoding', 'gzip, deflate'], ['sec-fetch-mode', 'cors'],
]

function request (method: string, target: string, headers: readonly (readonly [string, string])[], body: string, eol = '\r\n'): Buffer {
  let head = `${method} ${target} HTTP/1.1${eol}`
  for (const [name, value] of headers) head += `${name}:${value}${eol}`
  return Buffer.from(`${head}${eol}${body}`, 'latin1')
}

describe('scanPlainRequest', () => {
  test('an SDK request is plain, and read as llhttp reads it', () => {
    const body = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
    for (const [method, target, payload] of [['POST', '/v1/messages', body], ['POST', '/v1/messages?beta=true', body], ['GET', '/v1/models?limit=20&after_id=x%20y', '']] as const) {
      const headers = SDK_HEADERS.map(([name, value]) => [name, ` ${value}`] as const)
      const bytes = request(method, target, payload === '' ? headers : [...headers, ['content-length', ` ${payload.length}`]], payload)
      const plain = scanned(bytes)
      expect(plain).not.toBeNull()
      expect(plain).toEqual(llhttp(bytes))
    }
  })

  test('what it declines: split, pipelined, another version or method, framing it leaves to llhttp', () => {
    const good = request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' 2']], '{}')
    expect(scanned(good)).not.toBeNull()
    const declined = [
      good.subarray(0, good.length - 1), // the body's last byte in the next read
      good.subarray(0, 20), // the head in pieces
      Buffer.concat([good, good]), // pipelined
      Buffer.concat([good, Buffer.from('P')]), // the next request's first byte
      request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' 2']], '{}', '\n'), // LF alone
      Buffer.from(good.toString('latin1').replace('HTTP/1.1', 'HTTP/1.0'), 'latin1'),
      Buffer.from(good.toString('latin1').replace('POST', 'PUT'), 'latin1'),
      Buffer.from(good.toString('latin1').replace('/v1/', '/v2/'), 'latin1'),
      request('POST', '/v1/messages', [['host', ' x'], ['transfer-encoding', ' chunked']], '2\r\n{}\r\n0\r\n\r\n'),
      request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' 2'], ['content-length', ' 2']], '{}'),
      request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' 2'], ['connection', ' close']], '{}'),
      request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' 2'], ['expect', ' 100-continue']], '{}'),
      request('GET', '/v1/messages', [['host', ' x'], ['connection', ' upgrade'], ['upgrade', ' websocket']], ''),
      request('POST', '/v1/messages', [['host', ' x'], ['x-folded', ' a\r\n  b'], ['content-length', ' 2']], '{}'), // obs-fold
      request('POST', '/v1/messages', [['host', ' x'], ['x-high', ' caf\u00e9'], ['content-length', ' 2']], '{}'), // obs-text
      request('POST', '/v1/messages', [['host', ' x'], ['content-length', ' +2']], '{}'),
      request('POST', '/v1/messages', [['host', ' x']], '{}'), // a body without a length
      request('POST', '/v1/messages', [['host', ' x'], ['x-long', ` ${'a'.repeat(MAX_HEAD)}`], ['content-length', ' 2']], '{}'),
    ]
    for (const bytes of declined) expect(scanned(bytes), JSON.stringify(bytes.toString('latin1').slice(0, 120))).toBeNull()
  })

  test('whatever it accepts, llhttp reads the same way: one whole request, the same method, target, header lines and body', () => {
    const random = generator(20261129)
    const pick = <T>(items: readonly T[]): T => items[random(items.length)] as T
    const nameChars = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_.!#$%&'*+^`|~"
    const oddChars = ' \t:;"(),/<=>?@[\\]{}\r\n\u0000\u007f\u00e9'
    const valueChars = 'abcXYZ019 -_./:;,=+*"\'()[]{}<>?!@#$%^&|~`\\'
    const targetChars = "abcXYZ019-._~!$&'()*+,;=:@/?%"
    const oddTarget = ' "#<>\\^`{|}\u007f\u00e9\t'
    // Most requests are clean; some have odd characters anywhere.
    let oddness = 0
    const text = (chars: string, odd: string, max: number): string => {
      let out = ''
      for (let i = random(max + 1); i > 0; i--) out += oddness > 0 && random(oddness) === 0 ? pick([...odd]) : pick([...chars])
      return out
    }
    const blanks = (): string => pick(['', '', ' ', '  ', '\t', ' \t'])
    let accepted = 0
    const rounds = 6000
    for (let round = 0; round < rounds; round++) {
      oddness = random(3) === 0 ? 30 : 0
      const method = random(20) === 0 ? pick(['PUT', 'DELETE', 'post', 'GETS', 'HEAD']) : pick(['POST', 'GET'])
      const target = `${random(30) === 0 ? pick(['/v2/', '/', 'v1/', '*']) : '/v1/'}${text(targetChars, oddTarget, 30)}`
      const version = random(30) === 0 ? pick(['HTTP/1.0', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ']) : 'HTTP/1.1'
      const body = text(valueChars, '\r\n\u0000', random(4) === 0 ? 300 : 40)
      const lines: string[] = []
      for (let h = random(12); h > 0; h--) {
        lines.push(`${text(nameChars, oddChars, 20) || 'x'}${random(40) === 0 ? ' ' : ''}:${blanks()}${text(valueChars, oddChars, 40)}${blanks()}`)
      }
      const special = random(6)
      if (special === 0) lines.push(`${pick(['Content-Length', 'content-length', 'CONTENT-LENGTH'])}:${blanks()}${pick([String(body.length), String(body.length), String(body.length + 1), `0${body.length}`, '', 'x', '-1', `${body.length} 1`])}${blanks()}`)
      else if (special === 1) lines.push(`${pick(['Connection', 'connection'])}:${blanks()}${pick(['keep-alive', 'Keep-Alive', 'close', 'upgrade', 'keep-alive, te', 'keepalive'])}${blanks()}`)
      else if (special === 2) lines.push(`${pick(['Transfer-Encoding', 'upgrade', 'Expect', 'transfer-encoding'])}: ${pick(['chunked', 'h2c', '100-continue', 'identity'])}`)
      else lines.push(`content-length: ${body.length}`)
      if (random(10) === 0) lines.splice(random(lines.length + 1), 0, `content-length: ${body.length}`)
      const eol = random(40) === 0 ? '\n' : '\r\n'
      let raw = `${method} ${target} ${version}${eol}${lines.map((line) => `${line}${random(60) === 0 ? '\n' : eol}`).join('')}${random(60) === 0 ? '\n' : eol}${body}`
      // Now and then a byte changed, added or taken away anywhere.
      if (random(5) === 0) {
        const at = random(raw.length)
        const byte = String.fromCharCode(random(256))
        raw = pick([raw.slice(0, at) + byte + raw.slice(at + 1), raw.slice(0, at) + byte + raw.slice(at), raw.slice(0, at) + raw.slice(at + 1)])
      }
      const bytes = Buffer.from(raw, 'latin1')
      const plain = scanned(bytes)
      if (plain === null) continue
      accepted++
      expect(plain, JSON.stringify(raw)).toEqual(llhttp(bytes))
    }
    // Enough of them are plain for the comparison to mean something.
    expect(accepted).toBeGreaterThan(rounds / 5)
  })
})
