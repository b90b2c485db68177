import { mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEmulator, type Emulator } from '../src/index.js'
import { type ManagedProcess, startCommandProcess } from '../src/managed-process.js'
import { presetCommand } from '../src/references/reference-presets.js'
import { eventually } from './eventually.js'

/**
 * The node-relay reference (Node's floor) as the bench runs it: its built script, started by its
 * preset's command, in front of the emulator. It must relay every byte of an exchange both ways,
 * keep one upstream connection per client connection, respect a client that reads slowly, and
 * stop on SIGTERM.
 */

const directory = mkdtempSync(join(tmpdir(), 'apt-bench-relay-'))
let emulator: Emulator
let relay: ManagedProcess

beforeAll(async () => {
  emulator = await createEmulator({ port: 0, recordLimit: 10 })
  relay = await startCommandProcess([], { name: 'node-relay', command: presetCommand('node-relay', directory), upstreamUrl: emulator.url, directory })
})

afterAll(async () => {
  await relay?.close()
  await emulator?.close()
  rmSync(directory, { recursive: true, force: true })
})

const BODY = JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], stream: true })

/** One raw HTTP/1.1 streaming request; `extra` adds header lines. */
function requestBytes(extra: string[] = []): string {
  return [
    'POST /v1/messages HTTP/1.1',
    'host: relay.test',
    'x-api-key: k',
    'anthropic-version: 2023-06-01',
    'content-type: application/json',
    ...extra,
    `content-length: ${Buffer.byteLength(BODY)}`,
    '',
    BODY,
  ].join('\r\n')
}

const END_OF_CHUNKED_BODY = '\r\n0\r\n\r\n'

/** Reads from `socket` until what was read ends with a chunked body's last chunk; resolves to all of it. */
function readResponse(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = []
    let tail = ''
    const onData = (chunk: Buffer): void => {
      pieces.push(chunk)
      tail = (tail + chunk.toString('latin1')).slice(-END_OF_CHUNKED_BODY.length)
      if (tail !== END_OF_CHUNKED_BODY) return
      socket.off('data', onData)
      resolve(Buffer.concat(pieces).toString('latin1'))
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}

/** Until the emulator has no connection open (the one a test relayed may still be closing). */
async function upstreamIdle(): Promise<void> {
  await eventually(() => expect(emulator.stats().activeConnections).toBe(0))
}

describe('node-relay (the bench\'s Node floor)', () => {
  it('relays two streamed exchanges on one keep-alive connection over one upstream connection', async () => {
    await upstreamIdle()
    emulator.requests.length = 0
    const socket = connect(Number(new URL(relay.url).port), '127.0.0.1')
    try {
      for (let round = 0; round < 2; round++) {
        socket.write(requestBytes())
        const text = await readResponse(socket)
        expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true)
        expect(text).toMatch(/\r\ncontent-type: text\/event-stream/i)
        for (const event of ['message_start', 'content_block_delta', 'message_delta', 'message_stop']) expect(text).toContain(`event: ${event}\n`)
      }
    } finally {
      socket.destroy()
    }
    // Both requests arrived upstream as sent, on a single upstream connection. (The bench's
    // readiness probe made a connection of its own through the relay, so the emulator's connection
    // count says less than the requests' connection ids.)
    const [first, second] = emulator.requests
    expect(emulator.requests).toHaveLength(2)
    expect(second?.connectionId).toBe(first?.connectionId)
    expect([first?.reusedConnection, second?.reusedConnection]).toEqual([false, true])
    expect(emulator.lastRequest()?.headers['x-api-key']).toBe('k')
    expect(emulator.lastRequest()?.body.toString('utf8')).toBe(BODY)
  })

  it('holds a large stream back while its client does not read, then delivers every byte', async () => {
    await upstreamIdle()
    emulator.resetStats()
    const socket = connect(Number(new URL(relay.url).port), '127.0.0.1')
    try {
      // About 24 MB of events: more than the kernel buffers of the three sockets on the way hold
      // (the client's own, which it stops reading, and the relay's two, about 8 MB here).
      socket.write(requestBytes(['x-emulator-deltas: 20000', 'x-emulator-delta-size: 1000']))
      socket.pause()
      await new Promise((resolve) => setTimeout(resolve, 500))
      // The emulator could not finish while the client read nothing.
      expect(emulator.stats()).toMatchObject({ requests: 1, completed: 0 })
      const response = readResponse(socket)
      socket.resume()
      const text = await response
      expect(text.length).toBeGreaterThan(20_000_000)
      expect(text.match(/event: content_block_delta\n/g)?.length).toBe(20000)
      expect(text).toContain('event: message_stop\n')
      await eventually(() => expect(emulator.stats().completed).toBe(1))
    } finally {
      socket.destroy()
    }
  })

  it('closes the upstream connection when its client goes away, and exits 0 on SIGTERM', async () => {
    await upstreamIdle()
    const socket = connect(Number(new URL(relay.url).port), '127.0.0.1')
    socket.write(requestBytes())
    await readResponse(socket)
    await eventually(() => expect(emulator.stats().activeConnections).toBe(1))
    socket.destroy()
    await eventually(() => expect(emulator.stats().activeConnections).toBe(0))
    await relay.close()
    expect(relay.exited).toBe('0')
  })
})
