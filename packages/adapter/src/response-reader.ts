/**
 * The wire engine's HTTP/1.1 response reader, in JavaScript.
 *
 * It reads a response as bytes: the head is checked in one pass over its bytes (one latin1 string
 * of it gives the few values the proxy reads) and kept as the bytes it arrived as, so the head
 * that goes to the client is those bytes with the hop-by-hop lines left out (no string per header
 * name and value, no copy of each into a list and back into bytes). Body bytes are handed on as they come, with chunked framing taken off.
 * Node's llhttp binding did this before (docs/performance.md, change 41): its header strings,
 * its Buffer per body piece and its four calls into JavaScript per response cost more than the
 * scan, and it read the socket only through its own callbacks.
 *
 * What it accepts is what llhttp accepts without lenient flags, and its errors carry llhttp's
 * codes (HPE_*): an `HTTP/1.0` or `HTTP/1.1` status line with a three-digit status, header names
 * of token characters, values without control characters other than HTAB, CRLF line ends, one
 * `content-length` of digits and no `content-length` beside `transfer-encoding`. 1xx interim
 * responses are read and dropped (the engine never sends `expect`); 101 is an error (it never
 * asks to upgrade). Framing follows RFC 9112 §6.3.
 */
import { Buffer } from 'node:buffer'

/** The largest head accepted (status line and header lines), as Node's default for llhttp. */
export const MAX_HEAD_BYTES = 16_384
/** The largest trailer section read (trailers are dropped, as the engine always did). */
const MAX_TRAILER_BYTES = 16_384

const VERSION_PREFIX = Buffer.from('HTTP/1.', 'latin1')

/** 1 for the characters of an RFC 9110 token (header names). */
const TOKEN = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1
/** 1 for the characters allowed in a header value, a reason phrase or a chunk extension: HTAB, SP, VCHAR, obs-text. */
const TEXT = new Uint8Array(256)
TEXT[9] = 1
for (let c = 0x20; c < 0x7f; c++) TEXT[c] = 1
for (let c = 0x80; c < 0x100; c++) TEXT[c] = 1
/** Value of a hexadecimal digit, or -1. */
const HEX = new Int8Array(256).fill(-1)
for (let c = 0; c < 16; c++) HEX[c.toString(16).charCodeAt(0)] = c
for (let c = 10; c < 16; c++) HEX[c.toString(16).toUpperCase().charCodeAt(0)] = c

/** Hop-by-hop response headers: read, never forwarded (the proxy frames its own response). Shared with headers.ts. */
export const RESPONSE_HOP_BY_HOP: readonly string[] = [
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate',
]

/** `names` grouped by their length, for comparisons without a hash (a new string's is not known). */
export function byLength (names: readonly string[]): (readonly string[] | undefined)[] {
  const out: string[][] = []
  for (const name of names) {
    const same = out[name.length]
    if (same === undefined) out[name.length] = [name]
    else same.push(name)
  }
  return out
}

const HOP_BY_HOP_BY_LENGTH = byLength(RESPONSE_HOP_BY_HOP)

/**
 * Whether a lower-case response header name is in `RESPONSE_HOP_BY_HOP`: compared with the names
 * of its length, where a `Set` lookup hashed each new name string first.
 */
export function isResponseHopByHop (lower: string): boolean {
  const candidates = HOP_BY_HOP_BY_LENGTH[lower.length]
  if (candidates === undefined) return false
  for (let c = 0; c < candidates.length; c++) if (candidates[c] === lower) return true
  return false
}

/** The response header names the reader acts on: the hop-by-hop ones and those whose values it reads. */
const NOTED_NAMES: readonly string[] = [...RESPONSE_HOP_BY_HOP, 'content-length', 'content-type', 'content-encoding', 'request-id']
/** 1 at every name length that a dropped or noted response header has: other names are not lower-cased. */
export const NOTED_LENGTH = new Uint8Array(20)
for (const name of NOTED_NAMES) NOTED_LENGTH[name.length] = 1
const NOTED_BY_LENGTH = byLength(NOTED_NAMES)

/**
 * Which noted name the header name `buffer[from, to)` is, compared without regard to case, or
 * null: its bytes are compared where a string was sliced from the head and lower-cased (both
 * allocated, and `toLowerCase` copies a name even when it has no upper-case letter). The bytes are
 * token characters (checked by the scan), and of those `| 0x20` lower-cases the letters and maps
 * nothing else onto a letter or onto `-`.
 */
function notedName (buffer: Buffer, from: number, to: number): string | null {
  const candidates = NOTED_BY_LENGTH[to - from]
  if (candidates === undefined) return null
  for (let c = 0; c < candidates.length; c++) {
    const name = candidates[c] as string
    let i = 0
    while (i < name.length && ((buffer[from + i] as number) | 0x20) === name.charCodeAt(i)) i++
    if (i === name.length) return name
  }
  return null
}

/** A response head as it arrived, and the facts the proxy reads from it. */
export class ResponseHead {
  readonly statusCode: number
  readonly statusText: string
  /** The header lines as received, each with its CRLF (no status line, no blank line). */
  readonly block: Buffer
  /** [start, end) runs of `block` that are forwarded: every line but the hop-by-hop ones. */
  readonly runs: number[] = []
  runsLength = 0
  /** Lines the proxy adds after the forwarded ones, each with its CRLF (`server-timing`). */
  extra = ''
  isEventStream = false
  contentType: string | undefined = undefined
  contentEncoding: string | undefined = undefined
  requestId: string | undefined = undefined
  hasContentLength = false
  /** The declared content-length, or -1. */
  contentLength = -1
  /** A `transfer-encoding` header was present; `chunked` when its last coding is chunked. */
  transferEncoding = false
  chunked = false
  /** `connection: close` / `connection: keep-alive` were given. */
  connectionClose = false
  connectionKeepAlive = false
  /** `keep-alive: timeout=N`, in seconds, or -1. */
  keepAliveTimeoutS = -1
  /** The status line said HTTP/1.0. */
  http10 = false
  /**
   * The whole response is in the read that carried its head (no body, or a content-length body
   * that arrived with it): the reader completes it before that read's `execute` returns.
   */
  completesInRead = false

  constructor (statusCode: number, statusText: string, block: Buffer) {
    this.statusCode = statusCode
    this.statusText = statusText
    this.block = block
  }

  /** The forwarded headers as a flat [name, value, ...] list (for the paths that need strings). */
  list (): string[] {
    const out: string[] = []
    const runs = this.runs
    for (let r = 0; r < runs.length; r += 2) {
      const text = this.block.toString('latin1', runs[r], runs[r + 1])
      let at = 0
      while (at < text.length) {
        const next = text.indexOf('\r\n', at)
        const colon = text.indexOf(':', at)
        out.push(text.slice(at, colon), trimmed(text, colon + 1, next))
        at = next + 2
      }
    }
    return out
  }
}

/** `text[start, end)` without its leading and trailing blanks. */
function trimmed (text: string, start: number, end: number): string {
  let from = start
  let to = end
  while (from < to && isBlank(text.charCodeAt(from))) from++
  while (to > from && isBlank(text.charCodeAt(to - 1))) to--
  return text.slice(from, to)
}

function isBlank (code: number): boolean {
  return code === 32 || code === 9
}

/**
 * The header value `buffer[from, to)` without its leading and trailing blanks, decoded as a string
 * of its own. The reader decodes only the values it reads, not the whole head: a head string of
 * about 1 KB per response, and the slices of it, were about a tenth of what a request allocated.
 */
function valueAt (buffer: Buffer, from: number, to: number): string {
  let start = from
  let end = to
  while (start < end && isBlank(buffer[start] as number)) start++
  while (end > start && isBlank(buffer[end - 1] as number)) end--
  return buffer.toString('latin1', start, end)
}

/** The reason phrase `buffer[from, to)`; the usual `OK` is not decoded. */
function reasonAt (buffer: Buffer, from: number, to: number): string {
  if (to - from === 2 && buffer[from] === 0x4f && buffer[from + 1] === 0x4b) return 'OK'
  return buffer.toString('latin1', from, to)
}

/** What the reader tells, in order, for each final response. */
export interface ResponseTarget {
  onHead (head: ResponseHead): void
  onBody (chunk: Buffer): void
  onComplete (): void
}

const HEAD = 0
const LENGTH = 1
const UNTIL_CLOSE = 2
const CHUNK_SIZE = 3
const CHUNK_EXTENSION = 4
const CHUNK_SIZE_LF = 5
const CHUNK_DATA = 6
const CHUNK_DATA_CR = 7
const CHUNK_DATA_LF = 8
const TRAILER_START = 9
const TRAILER_LINE = 10
const TRAILER_LINE_LF = 11
const TRAILER_END_LF = 12
const HALTED = 13

const MAX_CHUNK_SIZE_BEFORE_DIGIT = Math.floor(Number.MAX_SAFE_INTEGER / 16)

/**
 * Reads the responses of one connection, one at a time. `execute` returns how many bytes it
 * used: it stops right after a final response completes (bytes after it belong to no request),
 * or -1 with `error` set to llhttp's code.
 */
export class ResponseReader {
  /** The response to the current request has no body (it answers a HEAD request). */
  skipBody = false
  /** Whether the connection may carry another request after the last complete response. */
  keepAlive = true
  error = ''
  readonly #target: ResponseTarget
  /** Body pieces are copied out of the read (it is a shared buffer that the next read overwrites). */
  readonly #copyBody: boolean
  #state = HEAD
  /** Head bytes of a head that has not ended yet. */
  #pending: Buffer | null = null
  /** Body bytes left: of a content-length body, or of the current chunk. */
  #remaining = 0
  #chunkDigits = 0
  #trailerBytes = 0
  /** A final response completed inside the running `execute`. */
  #completed = false
  /** Where the status line of the head being read ends (its CR). */
  #statusEnd = 0
  /** [name start, colon, CR] of each line of the head being read whose name has a noted length. */
  readonly #noted: number[] = []
  /** Bytes of the running read after the head being read. */
  #afterHead = 0

  constructor (target: ResponseTarget, copyBody: boolean) {
    this.#target = target
    this.#copyBody = copyBody
  }

  /** Nothing more is read (the connection is gone); a running `execute` returns. */
  halt (): void {
    this.#state = HALTED
    this.#pending = null
  }

  /** Reads `buffer[start, end)`; see the class. */
  execute (buffer: Buffer, start: number, end: number): number {
    let at = start
    this.#completed = false
    while (at < end) {
      switch (this.#state) {
        case HEAD: {
          const next = this.#readHead(buffer, at, end)
          if (next < 0) return -1
          at = next
          if (this.#completed) return at - start // a bodiless response
          break
        }
        case LENGTH: {
          const length = Math.min(this.#remaining, end - at)
          this.#remaining -= length
          this.#emit(buffer, at, length)
          at += length
          if (this.#remaining === 0 && this.#state === LENGTH) {
            this.#complete()
            return at - start
          }
          break
        }
        case UNTIL_CLOSE:
          this.#emit(buffer, at, end - at)
          return end - start
        case CHUNK_DATA: {
          const length = Math.min(this.#remaining, end - at)
          this.#remaining -= length
          if (this.#remaining === 0) this.#state = CHUNK_DATA_CR
          this.#emit(buffer, at, length)
          at += length
          break
        }
        case HALTED:
          return end - start
        default: {
          const next = this.#readFraming(buffer, at, end)
          if (next < 0) return -1
          at = next
          if (this.#completed) return at - start
        }
      }
    }
    return end - start
  }

  /** The connection ended: completes a body that runs until the close. False when a response was cut short. */
  finish (): boolean {
    if (this.#state === UNTIL_CLOSE) {
      this.#complete()
      return true
    }
    return this.#state === HEAD && this.#pending === null
  }

  #complete (): void {
    this.#state = HEAD
    this.#completed = true
    this.#target.onComplete()
  }

  #emit (buffer: Buffer, at: number, length: number): void {
    if (length === 0) return
    if (!this.#copyBody) {
      this.#target.onBody(buffer.subarray(at, at + length))
      return
    }
    const chunk = Buffer.allocUnsafe(length)
    buffer.copy(chunk, 0, at, at + length)
    this.#target.onBody(chunk)
  }

  #fail (code: string): number {
    this.error = code
    this.#state = HALTED
    this.#pending = null
    return -1
  }

  #reject (code: string): false {
    this.#fail(code)
    return false
  }

  // --- the head ----------------------------------------------------------------

  #readHead (buffer: Buffer, at: number, end: number): number {
    const pending = this.#pending
    // A head that began in an earlier read is scanned again from its start, joined to this read.
    const source = pending === null ? buffer : Buffer.concat([pending, buffer.subarray(at, end)])
    const start = pending === null ? at : 0
    const limit = pending === null ? end : source.length
    const headEnd = this.#scanHead(source, start, limit)
    if (headEnd < 0) return -1
    if (headEnd === 0) {
      if (limit - start > MAX_HEAD_BYTES) return this.#fail('HPE_HEADER_OVERFLOW')
      this.#pending = pending === null ? Buffer.from(buffer.subarray(at, end)) : source
      return end
    }
    this.#pending = null
    if (headEnd - 2 - start > MAX_HEAD_BYTES) return this.#fail('HPE_HEADER_OVERFLOW')
    this.#afterHead = limit - headEnd
    if (!this.#parseHead(source, start, headEnd - 2, pending === null)) return -1
    return pending === null ? headEnd : at + headEnd - pending.length
  }

  /**
   * Checks a head's bytes in `buffer[start, end)` in one pass: the status line, then each header
   * line (a token name, a colon, value characters, CRLF), up to the blank line. Bytes past `end`
   * are never read: they may be an earlier read's, in the shared buffer. Notes where the lines
   * whose names the proxy may read are (`#noted`). Returns the index after the blank line, 0 when
   * the head goes on past `end`, or -1 (`error` set). A loop over a Buffer's bytes runs about
   * three times as fast here as one over a string's characters.
   */
  #scanHead (buffer: Buffer, start: number, end: number): number {
    let i = start
    while (i < end && TEXT[buffer[i] as number] === 1) i++
    if (i + 1 >= end) return 0
    if (buffer[i] !== 13 || buffer[i + 1] !== 10) return this.#fail(i - start >= 12 ? 'HPE_INVALID_STATUS' : 'HPE_INVALID_CONSTANT')
    this.#statusEnd = i
    const noted = this.#noted
    noted.length = 0
    let at = i + 2
    while (at < end) {
      if (buffer[at] === 13) {
        if (at + 1 === end) return 0
        return buffer[at + 1] === 10 ? at + 2 : this.#fail('HPE_INVALID_HEADER_TOKEN')
      }
      i = at
      while (i < end && TOKEN[buffer[i] as number] === 1) i++
      if (i === end) return 0
      if (i === at || buffer[i] !== 58) return this.#fail('HPE_INVALID_HEADER_TOKEN') // :
      const colon = i
      i++
      while (i < end && TEXT[buffer[i] as number] === 1) i++
      if (i + 1 >= end) return 0
      if (buffer[i] !== 13 || buffer[i + 1] !== 10) return this.#fail('HPE_INVALID_HEADER_TOKEN')
      const nameLength = colon - at
      if (nameLength < NOTED_LENGTH.length && NOTED_LENGTH[nameLength] === 1) noted.push(at, colon, i)
      at = i + 2
    }
    return 0
  }

  /**
   * Acts on the head `#scanHead` checked: its status line, then the header lines up to `end`
   * (the last line's CRLF included). The one latin1 string of the head gives the few values the
   * proxy reads.
   */
  #parseHead (buffer: Buffer, start: number, end: number, copy: boolean): boolean {
    // HTTP/1.x SP 3DIGIT [SP reason]
    const lineEnd = this.#statusEnd
    if (lineEnd - start < 12) return this.#reject('HPE_INVALID_CONSTANT')
    for (let i = 0; i < 7; i++) {
      if (buffer[start + i] !== VERSION_PREFIX[i]) return this.#reject('HPE_INVALID_CONSTANT')
    }
    const minor = (buffer[start + 7] as number) - 48
    if (minor !== 0 && minor !== 1) return this.#reject('HPE_INVALID_VERSION')
    if (buffer[start + 8] !== 32) return this.#reject('HPE_INVALID_CONSTANT')
    const d0 = (buffer[start + 9] as number) - 48
    const d1 = (buffer[start + 10] as number) - 48
    const d2 = (buffer[start + 11] as number) - 48
    if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return this.#reject('HPE_INVALID_STATUS')
    if (lineEnd > start + 12 && buffer[start + 12] !== 32) return this.#reject('HPE_INVALID_STATUS')
    const statusCode = d0 * 100 + d1 * 10 + d2
    if (statusCode < 200) {
      // An interim response, checked like any head, is dropped; the final response follows.
      return statusCode === 101 ? this.#reject('HPE_PAUSED_UPGRADE') : true // an upgrade nobody asked for
    }
    const statusText = lineEnd > start + 13 ? reasonAt(buffer, start + 13, lineEnd) : ''
    const first = lineEnd + 2 // the first header line, in `buffer`
    let block: Buffer
    if (copy) {
      block = Buffer.allocUnsafe(end - first)
      buffer.copy(block, 0, first, end)
    } else {
      block = buffer.subarray(first, end)
    }
    const head = new ResponseHead(statusCode, statusText, block)
    head.http10 = minor === 0
    if (!this.#readNoted(buffer, first, end, head)) return false
    return this.#begin(head)
  }

  /** Notes the facts of the lines `#scanHead` noted, and records the runs of lines forwarded. */
  #readNoted (buffer: Buffer, first: number, end: number, head: ResponseHead): boolean {
    const noted = this.#noted
    let runStart = first
    for (let n = 0; n < noted.length; n += 3) {
      const at = noted[n] as number
      const colon = noted[n + 1] as number
      const lineEnd = noted[n + 2] as number
      const name = notedName(buffer, at, colon)
      if (name === null) continue
      if (isResponseHopByHop(name)) {
        if (at > runStart) head.runs.push(runStart - first, at - first)
        runStart = lineEnd + 2
        noteHopByHop(name, valueAt(buffer, colon + 1, lineEnd), head)
      } else if (!this.#noteFact(name, buffer, colon + 1, lineEnd, head)) {
        return false
      }
    }
    if (end > runStart) head.runs.push(runStart - first, end - first)
    let length = 0
    for (let r = 0; r < head.runs.length; r += 2) length += (head.runs[r + 1] as number) - (head.runs[r] as number)
    head.runsLength = length
    return true
  }

  /**
   * One noted header's value, `buffer[from, to)`. Each value is decoded from the bytes as a string
   * of its own: a slice of a larger string would keep that string alive for as long as an open
   * stream keeps the value (the request id; docs/performance.md, change 43).
   */
  #noteFact (name: string, buffer: Buffer, from: number, to: number, head: ResponseHead): boolean {
    switch (name) {
      case 'content-length': {
        let at = from
        let end = to
        while (at < end && isBlank(buffer[at] as number)) at++
        while (end > at && isBlank(buffer[end - 1] as number)) end--
        if (head.hasContentLength) return this.#reject('HPE_UNEXPECTED_CONTENT_LENGTH')
        if (end === at || end - at > 15) return this.#reject('HPE_INVALID_CONTENT_LENGTH')
        let length = 0
        for (; at < end; at++) {
          const digit = (buffer[at] as number) - 48
          if (digit < 0 || digit > 9) return this.#reject('HPE_INVALID_CONTENT_LENGTH')
          length = length * 10 + digit
        }
        head.hasContentLength = true
        head.contentLength = length
        break
      }
      case 'content-type': {
        const value = valueAt(buffer, from, to)
        head.contentType = value
        head.isEventStream = value.startsWith('text/event-stream')
        break
      }
      case 'content-encoding':
        head.contentEncoding = valueAt(buffer, from, to)
        break
      case 'request-id':
        head.requestId = valueAt(buffer, from, to)
        break
    }
    return true
  }

  /** Decides how the body is framed, hands the head on, and completes a bodiless response. */
  #begin (head: ResponseHead): boolean {
    if (head.transferEncoding && head.hasContentLength) return this.#reject('HPE_UNEXPECTED_CONTENT_LENGTH')
    this.keepAlive = head.http10 ? head.connectionKeepAlive && !head.connectionClose : !head.connectionClose
    const status = head.statusCode
    const bodiless = this.skipBody || status === 204 || status === 304
    let state = HEAD
    if (!bodiless) {
      if (head.chunked) {
        state = CHUNK_SIZE
        this.#chunkDigits = 0
        this.#remaining = 0
      } else if (head.transferEncoding || !head.hasContentLength) {
        state = UNTIL_CLOSE
        this.keepAlive = false
      } else if (head.contentLength > 0) {
        state = LENGTH
        this.#remaining = head.contentLength
      }
    }
    this.#state = state
    head.completesInRead = state === HEAD || (state === LENGTH && this.#remaining <= this.#afterHead)
    this.#target.onHead(head)
    if (state === HEAD && this.#state === HEAD) this.#complete()
    return true
  }

  // --- chunked framing and trailers, a byte at a time ----------------------------

  #readFraming (buffer: Buffer, start: number, end: number): number {
    let at = start
    while (at < end) {
      const c = buffer[at] as number
      switch (this.#state) {
        case CHUNK_SIZE: {
          const digit = HEX[c] as number
          if (digit >= 0) {
            if (this.#remaining > MAX_CHUNK_SIZE_BEFORE_DIGIT) return this.#fail('HPE_INVALID_CHUNK_SIZE')
            this.#remaining = this.#remaining * 16 + digit
            this.#chunkDigits++
          } else if (this.#chunkDigits === 0) {
            return this.#fail('HPE_INVALID_CHUNK_SIZE')
          } else if (c === 0x3b) { // ;
            this.#state = CHUNK_EXTENSION
          } else if (c === 13) {
            this.#state = CHUNK_SIZE_LF
          } else {
            return this.#fail('HPE_INVALID_CHUNK_SIZE')
          }
          break
        }
        case CHUNK_EXTENSION:
          if (c === 13) this.#state = CHUNK_SIZE_LF
          else if (TEXT[c] !== 1) return this.#fail('HPE_INVALID_CHUNK_SIZE')
          break
        case CHUNK_SIZE_LF:
          if (c !== 10) return this.#fail('HPE_STRICT')
          if (this.#remaining === 0) {
            this.#state = TRAILER_START
            this.#trailerBytes = 0
          } else {
            this.#state = CHUNK_DATA
            return at + 1 // the data itself is taken in bulk by execute
          }
          break
        case CHUNK_DATA_CR:
          if (c !== 13) return this.#fail('HPE_STRICT')
          this.#state = CHUNK_DATA_LF
          break
        case CHUNK_DATA_LF:
          if (c !== 10) return this.#fail('HPE_STRICT')
          this.#state = CHUNK_SIZE
          this.#chunkDigits = 0
          this.#remaining = 0
          break
        case TRAILER_START:
          if (c === 13) this.#state = TRAILER_END_LF
          else if (c === 10) return this.#fail('HPE_STRICT')
          else this.#state = TRAILER_LINE
          break
        case TRAILER_LINE:
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return this.#fail('HPE_HEADER_OVERFLOW')
          if (c === 13) this.#state = TRAILER_LINE_LF
          else if (c === 10) return this.#fail('HPE_STRICT')
          break
        case TRAILER_LINE_LF:
          if (c !== 10) return this.#fail('HPE_STRICT')
          this.#state = TRAILER_START
          break
        case TRAILER_END_LF:
          if (c !== 10) return this.#fail('HPE_STRICT')
          this.#complete()
          return at + 1
        default:
          return at // CHUNK_DATA or HALTED: execute takes over
      }
      at++
    }
    return at
  }
}

function noteHopByHop (name: string, value: string, head: ResponseHead): void {
  switch (name) {
    case 'transfer-encoding': {
      // The last coding of the last transfer-encoding line decides; anything but chunked last
      // means the body runs until the connection closes.
      head.transferEncoding = true
      const comma = value.lastIndexOf(',')
      head.chunked = trimmed(value, comma + 1, value.length).toLowerCase() === 'chunked'
      break
    }
    case 'connection': {
      const options = value.toLowerCase()
      // The usual values need no split.
      if (options === 'keep-alive') head.connectionKeepAlive = true
      else if (options === 'close') head.connectionClose = true
      else {
        for (const token of options.split(',')) {
          const option = token.trim()
          if (option === 'close') head.connectionClose = true
          else if (option === 'keep-alive') head.connectionKeepAlive = true
        }
      }
      break
    }
    case 'keep-alive':
      head.keepAliveTimeoutS = timeoutOf(value)
      break
  }
}

/** N of `timeout=N` in a keep-alive header (spaces allowed around `=`), or -1. */
function timeoutOf (value: string): number {
  const at = value.toLowerCase().indexOf('timeout')
  if (at === -1) return -1
  let i = at + 7
  while (isBlank(value.charCodeAt(i))) i++
  if (value.charCodeAt(i) !== 61) return -1
  i++
  while (isBlank(value.charCodeAt(i))) i++
  let seconds = -1
  for (let digit = value.charCodeAt(i) - 48; digit >= 0 && digit <= 9 && seconds < 1e9; digit = value.charCodeAt(++i) - 48) {
    seconds = (seconds < 0 ? 0 : seconds * 10) + digit
  }
  return seconds
}
