import type { Socket } from 'node:net'
import { expect } from 'vitest'

/** Raw HTTP/1.1 on a `node:net` socket, for tests that check the exact bytes on the wire. */

export interface RawResponse { statusLine: string, lines: string[], headers: [string, string][], body: Buffer, chunks: number[] | null, sizeLines?: string[] }

/** Reads HTTP/1.1 responses off a raw socket, one at a time, de-chunking by hand. */
export class RawReader {
  #buffer = Buffer.alloc(0)
  #waiters: (() => void)[] = []
  ended = false

  constructor (socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      for (const wake of this.#waiters.splice(0)) wake()
    })
    socket.on('close', () => {
      this.ended = true
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  /** Bytes received and not read yet. */
  get unread (): Buffer {
    return this.#buffer
  }

  async #need (predicate: () => number): Promise<number> {
    for (;;) {
      const at = predicate()
      if (at >= 0) return at
      if (this.ended) throw new Error(`connection closed with ${this.#buffer.length} unread bytes: ${JSON.stringify(this.#buffer.toString('latin1').slice(0, 200))}`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  #take (length: number): Buffer {
    const out = this.#buffer.subarray(0, length)
    this.#buffer = this.#buffer.subarray(length)
    return out
  }

  /** Resolves once `text` has arrived (nothing is consumed). */
  async waitFor (text: string): Promise<void> {
    await this.#need(() => this.#buffer.indexOf(text))
  }

  async response (bodiless = false): Promise<RawResponse> {
    const headEnd = await this.#need(() => this.#buffer.indexOf('\r\n\r\n'))
    const lines = this.#take(headEnd + 4).toString('latin1').split('\r\n').slice(0, -2)
    const statusLine = lines.shift() as string
    const headers = lines.map((line) => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as [string, string]
    })
    const get = (name: string): string | undefined => headers.find(([key]) => key === name)?.[1]
    if (bodiless) return { statusLine, lines, headers, body: Buffer.alloc(0), chunks: null }
    const length = get('content-length')
    if (length !== undefined) {
      await this.#need(() => this.#buffer.length >= Number(length) ? 0 : -1)
      return { statusLine, lines, headers, body: Buffer.from(this.#take(Number(length))), chunks: null }
    }
    if (get('transfer-encoding') === 'chunked') {
      const parts: Buffer[] = []
      const chunks: number[] = []
      const sizeLines: string[] = []
      for (;;) {
        const lineEnd = await this.#need(() => this.#buffer.indexOf('\r\n'))
        const sizeLine = this.#take(lineEnd + 2).toString('latin1').slice(0, -2)
        sizeLines.push(sizeLine)
        const size = Number.parseInt(sizeLine, 16)
        await this.#need(() => this.#buffer.length >= size + 2 ? 0 : -1)
        const data = this.#take(size + 2)
        expect(data.subarray(size).toString('latin1')).toBe('\r\n')
        if (size === 0) return { statusLine, lines, headers, body: Buffer.concat(parts), chunks, sizeLines }
        chunks.push(size)
        parts.push(Buffer.from(data.subarray(0, size)))
      }
    }
    // Close-delimited.
    await this.#need(() => this.ended ? 0 : -1)
    return { statusLine, lines, headers, body: Buffer.from(this.#take(this.#buffer.length)), chunks: null }
  }
}

export function header (response: RawResponse, name: string): string | undefined {
  return response.headers.find(([key]) => key === name)?.[1]
}

export const REQUEST_HEADERS = 'host: proxy\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n'

export function post (path: string, body: string, extra = ''): string {
  return `POST ${path} HTTP/1.1\r\n${REQUEST_HEADERS}${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

