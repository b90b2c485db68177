import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, test } from 'vitest'
import type { RequestRecord } from './metrics.js'
import { BatchedDestination, logRequest } from './request-log.js'

function capture (level = 'info'): { log: pino.Logger, lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'))
      callback()
    },
  })
  return { log: pino({ level }, stream), lines }
}

function record (overrides: Partial<RequestRecord>): RequestRecord {
  return {
    route: 'messages', path: '/v1/messages', method: 'POST', status: 200, durationMs: 12.3456789, ttfbMs: 3.21,
    bytesOut: 355, isStream: false, errorCode: undefined, overheadMs: 0.1234567, usage: undefined, ttftMs: -1,
    ...overrides,
  }
}

/** What `log.info({...}, 'request')` wrote before the line was hand-built. */
function viaPino (log: pino.Logger, r: RequestRecord, exchange: { upstreamRequestId: string | undefined, reusedSocket: boolean, retried: boolean } | null): void {
  log.info({
    method: r.method,
    path: r.path,
    route: r.route,
    status: r.status,
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
    ttfb_ms: r.ttfbMs < 0 ? null : Math.round(r.ttfbMs * 1000) / 1000,
    ttft_ms: r.ttftMs < 0 ? null : Math.round(r.ttftMs * 1000) / 1000,
    overhead_ms: r.overheadMs < 0 ? null : Math.round(r.overheadMs * 1000) / 1000,
    model: r.usage?.model ?? null,
    input_tokens: r.usage?.usage?.inputTokens ?? null,
    output_tokens: r.usage?.usage?.outputTokens ?? null,
    bytes_out: r.bytesOut,
    stream: r.isStream,
    upstream_request_id: exchange?.upstreamRequestId ?? null,
    reused_socket: exchange?.reusedSocket ?? false,
    retried: exchange?.retried ?? false,
    error_code: r.errorCode ?? null,
  }, 'request')
}

describe('logRequest', () => {
  const usage = { inputTokens: 22, outputTokens: 5, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }
  const cases: [string, RequestRecord, { upstreamRequestId: string | undefined, reusedSocket: boolean, retried: boolean } | null][] = [
    ['a plain JSON message', record({ usage: { model: 'claude-opus-4-8', usage } as RequestRecord['usage'] }), { upstreamRequestId: 'req_1', reusedSocket: true, retried: false }],
    ['a rejected request with no exchange', record({ status: 401, ttfbMs: -1, overheadMs: -1, errorCode: 'APT_SERVER_UNAUTHORIZED' }), null],
    ['quotes, backslashes, control and non-ASCII characters', record({ path: '/v1/messages?q="a\\b"\t\u0001é', usage: { model: 'mödel "x"', usage } as RequestRecord['usage'] }), { upstreamRequestId: 'req_"2"', reusedSocket: false, retried: true }],
    ['a stream with a time to first token', record({ isStream: true, ttftMs: 250.5, route: 'complete' }), { upstreamRequestId: undefined, reusedSocket: false, retried: false }],
    ['milliseconds that round to .05, .005, a whole number and up to the next one', record({ durationMs: 7.05, ttfbMs: 0.0049999, ttftMs: 3.0004, overheadMs: 0.9996 }), null],
    ['zero, one-digit and large integers', record({ status: 0, durationMs: 0, bytesOut: Number.MAX_SAFE_INTEGER, usage: { model: 'm', usage: { ...usage, inputTokens: 0, outputTokens: 10 } } as RequestRecord['usage'] }), null],
    ['numbers JSON writes in other forms', record({ durationMs: 1e300, bytesOut: 1e21, usage: { model: 'm', usage: { ...usage, inputTokens: -3, outputTokens: 0.5 } } as RequestRecord['usage'] }), null],
  ]

  test.each(cases)('%s: the same JSON, key for key and in order, as pino wrote from an object', (_name, r, exchange) => {
    const hand = capture()
    const reference = capture()
    logRequest(hand.log, r, exchange)
    viaPino(reference.log, r, exchange)
    expect(hand.lines).toHaveLength(1)
    expect(hand.lines[0]?.endsWith('}\n')).toBe(true)
    const ours = JSON.parse(hand.lines[0] as string) as Record<string, unknown>
    const theirs = JSON.parse(reference.lines[0] as string) as Record<string, unknown>
    expect(typeof ours.time).toBe('number')
    delete ours.time
    delete theirs.time
    expect(Object.keys(ours)).toEqual(Object.keys(theirs))
    expect(ours).toEqual(theirs)
  })

  test('a long line, then a short one, then the long one again: each complete, nothing left over from the one before', () => {
    const hand = capture()
    const reference = capture()
    for (const [r, exchange] of [cases[0], cases[1], cases[2], cases[1]].map((c) => [c[1], c[2]] as const)) {
      logRequest(hand.log, r, exchange)
      viaPino(reference.log, r, exchange)
    }
    expect(hand.lines).toHaveLength(4)
    for (let i = 0; i < 4; i++) {
      const ours = JSON.parse(hand.lines[i] as string) as Record<string, unknown>
      const theirs = JSON.parse(reference.lines[i] as string) as Record<string, unknown>
      delete ours.time
      delete theirs.time
      expect(ours).toEqual(theirs)
    }
  })

  test.each([
    ['pino\'s default (epoch milliseconds)', undefined],
    ['ISO time', pino.stdTimeFunctions.isoTime],
    ['no time', false],
    ['a time function of the application', () => ',"time":"then"'],
  ] as const)('the time is the logger\'s own: %s', (_name, timestamp) => {
    const lines: string[] = []
    const stream = new Writable({
      write (chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'))
        callback()
      },
    })
    const log = pino({ level: 'info', ...(timestamp === undefined ? {} : { timestamp }) }, stream)
    const before = Date.now()
    logRequest(log, record({}), null)
    viaPino(log, record({}), null)
    const after = Date.now()
    const [ours, theirs] = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(Object.keys(ours as object)).toEqual(Object.keys(theirs as object))
    if (timestamp === undefined) {
      expect(ours?.time).toBeGreaterThanOrEqual(before)
      expect(ours?.time).toBeLessThanOrEqual(after)
      expect(lines[0]).toMatch(/^\{"level":30,"time":\d{13},"pid":/)
    } else {
      // The same piece pino wrote, to within the time between the two lines.
      expect(typeof ours?.time).toBe(typeof theirs?.time)
      if (timestamp !== pino.stdTimeFunctions.isoTime) expect(ours?.time).toEqual(theirs?.time)
    }
  })

  test('a child logger keeps its bindings; a level above info writes nothing', () => {
    const { log, lines } = capture()
    logRequest(log.child({ reqId: 'req-7' }), record({}), null)
    expect(JSON.parse(lines[0] as string).reqId).toBe('req-7')
    const quiet = capture('warn')
    logRequest(quiet.log, record({}), null)
    expect(quiet.lines).toEqual([])
  })
})

describe('logRequest into a BatchedDestination', () => {
  const usage = { inputTokens: 22, outputTokens: 5, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }
  const records: [RequestRecord, { upstreamRequestId: string | undefined, reusedSocket: boolean, retried: boolean } | null][] = [
    [record({ usage: { model: 'claude-opus-4-8', usage } as RequestRecord['usage'] }), { upstreamRequestId: 'req_011CUj', reusedSocket: true, retried: false }],
    [record({ status: 401, ttfbMs: -1, overheadMs: -1, errorCode: 'APT_SERVER_UNAUTHORIZED' }), null],
    [record({ path: '/v1/messages?q="a\\b"\t\u0001é\ud800', usage: { model: 'mödel "x"', usage } as RequestRecord['usage'] }), { upstreamRequestId: 'req_"2"', reusedSocket: false, retried: true }],
    [record({ isStream: true, ttftMs: 250.5, durationMs: 1234.0005, bytesOut: 0 }), { upstreamRequestId: undefined, reusedSocket: false, retried: false }],
  ]

  function logged (write: (log: pino.Logger) => void, options: { batchBytes: number, maxPendingBytes?: number }): { text: string, dropped: number } {
    const dir = mkdtempSync(join(tmpdir(), 'apt-log-'))
    const file = join(dir, 'out.log')
    const fd = openSync(file, 'w')
    const destination = new BatchedDestination({ fd, ...options })
    write(pino({ level: 'info', timestamp: () => ',"time":1700000000000' }, destination))
    destination.flushSync()
    closeSync(fd)
    return { text: readFileSync(file, 'utf8'), dropped: destination.dropped }
  }

  function viaStream (write: (log: pino.Logger) => void): string {
    const lines: string[] = []
    const stream = new Writable({
      write (chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'))
        callback()
      },
    })
    write(pino({ level: 'info', timestamp: () => ',"time":1700000000000' }, stream))
    return lines.join('')
  }

  test('byte for byte the line any other stream receives, across batches, with bindings in and out of ASCII', () => {
    const write = (log: pino.Logger): void => {
      const children = [log, log.child({ reqId: 'req-7' }), log.child({ tenant: 'zürich ✓' })]
      for (let i = 0; i < 300; i++) {
        const [r, exchange] = records[i % records.length] as (typeof records)[number]
        logRequest(children[i % children.length] as pino.Logger, r, exchange)
        if (i % 50 === 0) log.info({ n: i }, 'another line')
      }
    }
    const batched = logged(write, { batchBytes: 1024 })
    expect(batched.dropped).toBe(0)
    expect(batched.text).toBe(viaStream(write))
    expect(batched.text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as unknown)).toHaveLength(306)
  })

  test('a line longer than a batch holds is written whole, and the lines around it too', () => {
    const long = record({ path: `/v1/messages?q=${'x'.repeat(5000)}` })
    const write = (log: pino.Logger): void => {
      logRequest(log, (records[0] as (typeof records)[number])[0], null)
      logRequest(log, long, null)
      logRequest(log, (records[1] as (typeof records)[number])[0], null)
    }
    const batched = logged(write, { batchBytes: 256 })
    expect(batched.text).toBe(viaStream(write))
    expect(JSON.parse(batched.text.split('\n')[1] as string).path).toBe(long.path)
  })

  test('past maxPendingBytes request lines are dropped and counted, never half written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-log-'))
    const path = join(dir, 'fifo')
    execFileSync('mkfifo', [path])
    const writer = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    try {
      const destination = new BatchedDestination({ fd: writer, batchBytes: 1024, maxPendingBytes: 16_384 })
      const log = pino({ level: 'info' }, destination)
      // About 2 MB into a pipe that holds 64 KB and that nobody reads yet.
      for (let i = 0; i < 5000; i++) logRequest(log, record({ bytesOut: i }), null)
      destination.flush()
      expect(destination.dropped).toBeGreaterThan(0)
      // Read until every pending batch went out: none may be left to retry into a reused fd.
      const buffer = Buffer.alloc(1 << 16)
      let text = ''
      for (let empty = 0; empty < 3;) {
        destination.flush()
        try {
          const n = readSync(reader, buffer)
          text += buffer.toString('utf8', 0, n)
          empty = 0
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
          empty++
        }
      }
      const kept = text.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { bytes_out: number }).bytes_out)
      expect(kept.length).toBeGreaterThan(0)
      expect(kept).toEqual([...kept].sort((a, b) => a - b))
    } finally {
      closeSync(writer)
      closeSync(reader)
    }
  })
})

describe('BatchedDestination', () => {
  test('every line arrives once and in order: batched writes, a line larger than a batch, multi-byte text, flushSync at the end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apt-log-'))
    const file = join(dir, 'out.log')
    const fd = openSync(file, 'w')
    const destination = new BatchedDestination({ fd, batchBytes: 256 })
    const expected: string[] = []
    for (let i = 0; i < 500; i++) {
      const line = i === 250 ? `${'x'.repeat(2000)}\n` : `{"n":${i},"text":"héllo ✓ ${'y'.repeat(i % 40)}"}\n`
      expected.push(line)
      destination.write(line)
      if (i % 97 === 0) destination.flush()
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    // Let writes in flight finish, then write the rest synchronously, as at exit.
    await new Promise((resolve) => setTimeout(resolve, 100))
    destination.flushSync()
    closeSync(fd)
    expect(readFileSync(file, 'utf8')).toBe(expected.join(''))
  })

  async function readFifoUntil (fd: number, want: number): Promise<string> {
    let text = ''
    const buffer = Buffer.alloc(65_536)
    const deadline = Date.now() + 10_000
    while (text.length < want && Date.now() < deadline) {
      try {
        const n = readSync(fd, buffer)
        text += buffer.toString('utf8', 0, n)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    return text
  }

  function fifo (): { writer: number, reader: number, close (): void } {
    const path = join(mkdtempSync(join(tmpdir(), 'apt-log-')), 'fifo')
    execFileSync('mkfifo', [path])
    const writer = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    return { writer, reader, close: () => { closeSync(writer); closeSync(reader) } }
  }

  test('a full non-blocking pipe is never waited for: batches stay pending, are retried, and every line arrives in order', async () => {
    const pipe = fifo()
    try {
      const destination = new BatchedDestination({ fd: pipe.writer, batchBytes: 1024 })
      const lines = Array.from({ length: 3000 }, (_, i) => `{"n":${i},"pad":"${'p'.repeat(100)}"}\n`)
      // About 360 KB into a pipe that holds 64 KB and that nobody reads yet: every write returns at once.
      for (const line of lines) destination.write(line)
      destination.flush()
      const text = await readFifoUntil(pipe.reader, lines.join('').length)
      expect(text).toBe(lines.join(''))
      expect(destination.dropped).toBe(0)
    } finally {
      pipe.close()
    }
  })

  test('flushAfterMs: a waiting line is written within it, by a timer that runs only while lines wait', async () => {
    const pipe = fifo()
    try {
      const destination = new BatchedDestination({ fd: pipe.writer, batchBytes: 4096, flushAfterMs: 30 })
      let flushes = 0
      const flush = destination.flush.bind(destination)
      destination.flush = () => {
        flushes++
        flush()
      }
      const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

      destination.write('{"n":1}\n')
      const start = performance.now()
      expect(await readFifoUntil(pipe.reader, 8)).toBe('{"n":1}\n')
      expect(performance.now() - start).toBeGreaterThanOrEqual(25)
      expect(flushes).toBe(1)
      // A line through reserve/commit (the request log's way) is flushed the same way.
      const line = '{"n":2}\n'
      const buffer = destination.reserve(line.length) as Buffer
      destination.commit(destination.length + buffer.write(line, destination.length))
      expect(await readFifoUntil(pipe.reader, 8)).toBe(line)
      expect(flushes).toBe(2)

      // Nothing waits: the timer does not run (an interval would have flushed five times).
      await sleep(160)
      expect(flushes).toBe(2)

      // Lines logged steadily: flushed about every 30 ms, every line once and in order.
      const lines: string[] = []
      for (let n = 0; n < 30; n++) {
        lines.push(`{"n":${n}}\n`)
        destination.write(lines[n] as string)
        await sleep(5)
      }
      expect(await readFifoUntil(pipe.reader, lines.join('').length)).toBe(lines.join(''))
      expect(flushes).toBeGreaterThanOrEqual(4)

      // flushSync (the server's close) writes what waits and stops the timer.
      destination.write('{"last":true}\n')
      destination.flushSync()
      const after = flushes
      expect(await readFifoUntil(pipe.reader, 14)).toBe('{"last":true}\n')
      await sleep(100)
      expect(flushes).toBe(after)
    } finally {
      pipe.close()
    }
  })

  test('past maxPendingBytes new lines are dropped and counted; those kept arrive whole and in order', async () => {
    const pipe = fifo()
    try {
      const destination = new BatchedDestination({ fd: pipe.writer, batchBytes: 1024, maxPendingBytes: 16_384 })
      const lines = Array.from({ length: 3000 }, (_, i) => `{"n":${i},"pad":"${'p'.repeat(100)}"}\n`)
      for (const line of lines) destination.write(line)
      destination.flush()
      expect(destination.dropped).toBeGreaterThan(0)
      const text = await readFifoUntil(pipe.reader, (lines.length - destination.dropped) * (lines[0] as string).length)
      const kept = text.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { n: number }).n)
      expect(kept.length + destination.dropped).toBe(lines.length)
      expect(kept).toEqual([...kept].sort((a, b) => a - b))
    } finally {
      pipe.close()
    }
  })
})


describe('logRequest with custom levels', () => {
  test('a logger whose `info` has another value writes the line pino would, at that level', () => {
    for (const options of [{ customLevels: { info: 35 }, useOnlyCustomLevels: true }, { customLevels: { audit: 45 } }]) {
      const lines: string[] = []
      const stream = new Writable({
        write (chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString('utf8'))
          callback()
        },
      })
      const log = pino({ level: 'info', ...options }, stream)
      logRequest(log, record({}), null)
      log.info({ n: 1 }, 'other')
      expect(lines).toHaveLength(2)
      const ours = JSON.parse(lines[0] as string) as { level: number, msg: string }
      const theirs = JSON.parse(lines[1] as string) as { level: number }
      expect(ours.msg).toBe('request')
      expect(ours.level).toBe(theirs.level)
    }
  })
})
