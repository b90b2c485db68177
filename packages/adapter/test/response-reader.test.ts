import { describe, expect, test } from 'vitest'
import { responseHeadLength, writeResponseHead } from '../src/headers.js'
import { MAX_HEAD_BYTES, type ResponseHead, ResponseReader } from '../src/response-reader.js'

interface Read {
  heads: ResponseHead[]
  body: string
  completed: number
}

function reader (copyBody = true): { reader: ResponseReader, read: Read } {
  const read: Read = { heads: [], body: '', completed: 0 }
  const target = {
    onHead (head: ResponseHead) { read.heads.push(head) },
    onBody (chunk: Buffer) { read.body += chunk.toString('latin1') },
    onComplete () { read.completed++ },
  }
  return { reader: new ResponseReader(target, copyBody), read }
}

/** Feeds `parts` one execute each; returns the bytes used of each. */
function feed (subject: ResponseReader, parts: Buffer[]): number[] {
  return parts.map((part) => subject.execute(part, 0, part.length))
}

const JSON_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_1\r\n' +
  'content-length: 11\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n{"ok":true}'
const CHUNKED_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n' +
  '5\r\nhello\r\n6;name="v al"\r\n world\r\nA\r\n, and more\r\n0\r\nx-trailer: 1\r\n\r\n'
const INTERIM_THEN_FINAL = 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n' +
  'HTTP/1.1 201 Created\r\nx-final: yes\r\ncontent-length: 2\r\n\r\nok'

describe('ResponseReader: framing', () => {
  test.each([
    ['content-length', JSON_RESPONSE, '{"ok":true}', 200],
    ['chunked, with an extension and a trailer', CHUNKED_RESPONSE, 'hello world, and more', 200],
    ['a 103 interim response, then the final one', INTERIM_THEN_FINAL, 'ok', 201],
    ['content-length: 0', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', '', 200],
    ['204 with no framing', 'HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n', '', 204],
    ['304 with a content-length (no body follows)', 'HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n', '', 304],
  ])('%s: the same head, body and one completion however the bytes are split', (_name, message, body, status) => {
    const bytes = Buffer.from(message, 'latin1')
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j += 3) {
        const { reader: subject, read } = reader()
        const parts = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)].filter((part) => part.length > 0)
        expect(feed(subject, parts)).toEqual(parts.map((part) => part.length))
        expect(read.body).toBe(body)
        expect(read.completed).toBe(1)
        expect(read.heads.map((head) => head.statusCode)).toEqual([status])
      }
    }
  })

  test('a body without content-length or chunked runs until the connection ends, and the connection is not reused', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nsome bytes', 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    expect(read.completed).toBe(0)
    expect(subject.keepAlive).toBe(false)
    expect(subject.finish()).toBe(true)
    expect(read).toMatchObject({ body: 'some bytes', completed: 1 })
  })

  test('finish() reports a response cut short, and nothing when no response had begun', () => {
    const idle = reader().reader
    expect(idle.finish()).toBe(true)
    const { reader: subject, read } = reader()
    const bytes = Buffer.from(JSON_RESPONSE.slice(0, -3), 'latin1')
    subject.execute(bytes, 0, bytes.length)
    expect(subject.finish()).toBe(false)
    expect(read.completed).toBe(0)
  })

  test('the response to a HEAD request has no body, whatever its content-length says', () => {
    const { reader: subject, read } = reader()
    subject.skipBody = true
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n', 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    expect(read.completed).toBe(1)
  })

  test('one reader reads response after response; execute stops right after a complete one', () => {
    const { reader: subject, read } = reader()
    const both = Buffer.from(JSON_RESPONSE + CHUNKED_RESPONSE, 'latin1')
    const used = subject.execute(both, 0, both.length)
    expect(used).toBe(JSON_RESPONSE.length) // the rest answers no request
    expect(read.completed).toBe(1)
    expect(subject.execute(both, used, both.length)).toBe(both.length - used)
    expect(read.completed).toBe(2)
    expect(read.body).toBe('{"ok":true}hello world, and more')
    const third = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n', 'latin1')
    expect(subject.execute(third, 0, third.length)).toBe(third.length)
    expect(read.completed).toBe(3)
  })

  test('body pieces are copies: the read buffer can be reused at once; a head end past the read is not taken', () => {
    const shared = Buffer.alloc(256)
    const first = 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n'
    shared.write(`${first}\r\nabcdef`, 'latin1')
    // Only the first line and a half is this read: the terminator further on is an earlier read's.
    const pieces: Buffer[] = []
    const keep = { onHead () {}, onBody (chunk: Buffer) { pieces.push(chunk) }, onComplete () {} }
    const copying = new ResponseReader(keep, true)
    expect(copying.execute(shared, 0, first.length)).toBe(first.length)
    shared.write('\r\nabcdef', 0, 'latin1')
    expect(copying.execute(shared, 0, 8)).toBe(8)
    shared.fill(0x7a)
    expect(Buffer.concat(pieces).toString()).toBe('abcdef')
  })
})

describe('ResponseReader: the head', () => {
  test('facts are read, hop-by-hop lines are left out of the forwarded runs, and list() gives the forwarded pairs', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from(JSON_RESPONSE, 'latin1')
    subject.execute(bytes, 0, bytes.length)
    const head = read.heads[0] as ResponseHead
    expect(head).toMatchObject({
      statusCode: 200, statusText: 'OK', contentType: 'application/json', isEventStream: false, requestId: 'req_1',
      hasContentLength: true, contentLength: 11, keepAliveTimeoutS: 5, http10: false,
    })
    expect(subject.keepAlive).toBe(true)
    expect(head.list()).toEqual(['content-type', 'application/json', 'request-id', 'req_1', 'content-length', '11'])
    head.extra = 'server-timing: proxy;dur=0.1\r\n'
    const out = Buffer.alloc(responseHeadLength('HTTP/1.1 200 OK\r\n', head, 'connection: keep-alive\r\n', '\r\n'))
    expect(writeResponseHead(out, 'HTTP/1.1 200 OK\r\n', head, 'connection: keep-alive\r\n', '\r\n')).toBe(out.length)
    expect(out.toString('latin1')).toBe('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_1\r\ncontent-length: 11\r\n' +
      'server-timing: proxy;dur=0.1\r\nconnection: keep-alive\r\n\r\n')
  })

  test('header bytes are forwarded as they came: case, spacing and obs-text untouched; dropped lines anywhere', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from('HTTP/1.1 200 Fine Thanks\r\nConnection: Keep-Alive\r\nX-Odd:\tv\xe9 l \r\nTransfer-Encoding: chunked\r\n' +
      'Content-Type:text/event-stream\r\nUpgrade: h2c\r\n\r\n0\r\n\r\n', 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    const head = read.heads[0] as ResponseHead
    expect(head.statusText).toBe('Fine Thanks')
    expect(head.isEventStream).toBe(true)
    expect(head.chunked).toBe(true)
    const forwarded = head.runs.reduce((text, at, index) => index % 2 === 0 ? text + head.block.toString('latin1', at, head.runs[index + 1]) : text, '')
    expect(forwarded).toBe('X-Odd:\tv\xe9 l \r\nContent-Type:text/event-stream\r\n')
    expect(head.runsLength).toBe(forwarded.length)
    expect(head.list()).toEqual(['X-Odd', 'v\xe9 l', 'Content-Type', 'text/event-stream'])
  })

  test.each([
    ['a content-length body in the same read', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}', true],
    ['a content-length body with part of it in the read', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n{}', false],
    ['a content-length of 0', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', true],
    ['a 204', 'HTTP/1.1 204 No Content\r\n\r\n', true],
    ['a chunked body, whole in the read', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', false],
    ['a body until the close', 'HTTP/1.1 200 OK\r\n\r\n{}', false],
  ])('completesInRead: %s → %s', (_name, message, expected) => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from(message, 'latin1')
    subject.execute(bytes, 0, bytes.length)
    expect((read.heads[0] as ResponseHead).completesInRead).toBe(expected)
    // What it promises: the response completed inside that same execute.
    if (expected) expect(read.completed).toBe(1)
  })

  test('completesInRead counts only the bytes after the head, when the head itself came in two reads', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}', 'latin1')
    subject.execute(bytes, 0, 20)
    subject.execute(bytes, 20, bytes.length)
    expect((read.heads[0] as ResponseHead).completesInRead).toBe(true)
    expect(read.completed).toBe(1)
    const { reader: second, read: secondRead } = reader()
    second.execute(bytes, 0, 20)
    second.execute(bytes, 20, bytes.length - 1)
    expect((secondRead.heads[0] as ResponseHead).completesInRead).toBe(false)
  })

  test('the facts are read from names in any case; names of the same lengths are not taken for them', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nx-request-ix: no\r\nREQUEST-ID: req_upper\r\ncontent-typf: no\r\nContent-TYPE: text/event-stream\r\n' +
      'content-ENCODING: gzip\r\nxontent-encoding: no\r\nContent-Length: 2\r\ncontent-lengtH_: no\r\n\r\n{}', 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    expect(read.heads[0]).toMatchObject({ requestId: 'req_upper', contentType: 'text/event-stream', isEventStream: true, contentEncoding: 'gzip', hasContentLength: true, contentLength: 2 })
    expect(read.completed).toBe(1)
  })

  test('every hop-by-hop name, in any case, is left out; names as long as them are forwarded', () => {
    const { reader: subject, read } = reader()
    const dropped = ['Connection', 'KEEP-ALIVE', 'proxy-connection', 'Transfer-Encoding', 'te', 'Trailer', 'upgrade', 'Proxy-Authenticate']
    const kept = ['x-connects', 'x-keepalive', 'x-proxy-connects', 'x-transfer-coding', 'tf', 'trailed', 'upgrad-', 'x-proxy-authentic']
    const lines = [...dropped.map((name) => `${name}: d\r\n`), ...kept.map((name) => `${name}: k\r\n`)]
    // A transfer coding other than chunked: the body runs until the connection ends.
    const bytes = Buffer.from(`HTTP/1.1 200 OK\r\n${lines.join('')}\r\n`, 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    const head = read.heads[0] as ResponseHead
    expect(head.transferEncoding).toBe(true)
    expect(head.list()).toEqual(kept.flatMap((name) => [name, 'k']))
  })

  test.each([
    ['HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx', false],
    ['HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\nx', true],
    ['HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx', false],
    ['HTTP/1.1 200 OK\r\nconnection: upgrade, Close\r\ncontent-length: 1\r\n\r\nx', false],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nx', false],
    ['HTTP/1.1 200\r\ncontent-length: 1\r\n\r\nx', true],
  ])('keep-alive of %j is %s', (message, keepAlive) => {
    const { reader: subject } = reader()
    const bytes = Buffer.from(message, 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    expect(subject.keepAlive).toBe(keepAlive)
  })
})

describe('ResponseReader: what it refuses, with llhttp\'s codes', () => {
  test.each([
    ['HTTP/2.0 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/1.2 200 OK\r\n\r\n', 'HPE_INVALID_VERSION'],
    ['HTTP/1.1 20x OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 099 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 200 O\x01K\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n', 'HPE_PAUSED_UPGRADE'],
    ['HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\n: no name\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nno-colon\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nx-a: one\nx-b: smuggled\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nx-a: one\rtwo\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nx-a: nul\x00\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nx-a: a\r\n folded\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 103 Early Hints\r\nbad name: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1234567890123456\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5 \r\nhello\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\rhello\r\n', 'HPE_STRICT'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX', 'HPE_STRICT'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffff\r\n', 'HPE_INVALID_CHUNK_SIZE'],
  ])('%j: %s', (message, code) => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from(message, 'latin1')
    expect(subject.execute(bytes, 0, bytes.length)).toBe(-1)
    expect(subject.error).toBe(code)
    expect(read.completed).toBe(0)
  })

  test('a head larger than the limit, whole or arriving in pieces, is refused', () => {
    const line = `x-filler: ${'a'.repeat(100)}\r\n`
    const big = Buffer.from(`HTTP/1.1 200 OK\r\n${line.repeat(Math.ceil(MAX_HEAD_BYTES / line.length))}\r\n`, 'latin1')
    const whole = reader().reader
    expect(whole.execute(big, 0, big.length)).toBe(-1)
    expect(whole.error).toBe('HPE_HEADER_OVERFLOW')
    const pieces = reader().reader
    let result = 0
    for (let at = 0; at < big.length && result >= 0; at += 1000) result = pieces.execute(big, at, Math.min(big.length, at + 1000))
    expect(result).toBe(-1)
    expect(pieces.error).toBe('HPE_HEADER_OVERFLOW')
  })

  test('after halt() nothing more is read or told', () => {
    const { reader: subject, read } = reader()
    const bytes = Buffer.from(JSON_RESPONSE, 'latin1')
    subject.halt()
    expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
    expect(read).toEqual({ heads: [], body: '', completed: 0 })
  })
})

describe('ResponseReader: what a head leaves behind', () => {
  test('the request id and encoding an exchange keeps for its life do not keep the head\'s text alive', async () => {
    const { setFlagsFromString } = await import('node:v8')
    const { runInNewContext } = await import('node:vm')
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const padding = `x-padding: ${'p'.repeat(8000)}\r\n`
    const kept: string[] = []
    const { reader: subject, read } = reader()
    gc()
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < 400; i++) {
      const id = `req_011CUj${String(i).padStart(20, '0')}`
      const bytes = Buffer.from(`HTTP/1.1 200 OK\r\n${padding}request-id: ${id}\r\ncontent-encoding: gzip, x-identity-${i}\r\ncontent-length: 0\r\n\r\n`, 'latin1')
      expect(subject.execute(bytes, 0, bytes.length)).toBe(bytes.length)
      const head = read.heads.pop() as ResponseHead
      expect(head.requestId).toBe(id)
      kept.push(head.requestId as string, head.contentEncoding as string)
    }
    gc()
    const retained = process.memoryUsage().heapUsed - before
    // Slices of each head's string would keep 400 × 8 KB (3.2 MB); the values themselves are about 30 KB.
    expect(retained).toBeLessThan(1_000_000)
    expect(kept).toHaveLength(800)
  })
})
