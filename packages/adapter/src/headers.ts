import { Buffer } from 'node:buffer'
import { byLength, isResponseHopByHop, NOTED_LENGTH, RESPONSE_HOP_BY_HOP, ResponseHead } from './response-reader.js'

/**
 * Header preparation for the forwarding path. Request headers arrive as Node's
 * flat `rawHeaders` array (repeated headers stay separate entries, so every
 * `anthropic-beta` line survives) and leave as a flat array undici accepts
 * without re-validation work beyond its own.
 */

/** What `requestHeaderKind` says of a lower-case request header name. */
const FORWARDED = 0
/** Hop-by-hop or proxy-owned (RFC 9110 §7.6.1 plus host/expect): never forwarded. */
const DROPPED = 1
/** `connection`: dropped, and the names it lists with it. */
const CONNECTION = 2
/** A credential a managed-auth proxy replaces with its own upstream key. */
const CREDENTIAL = 3
const ACCEPT_ENCODING = 4

/**
 * The kind of a lower-case request header name. A `switch` compares the name with each constant
 * (a length check first), where a `Set` lookup hashed every name: each request brings new name
 * strings, so each of its ~18 names was hashed once per request for nothing (1.6 µs of the
 * profile with the lookups; docs/performance.md, change 44).
 */
function requestHeaderKind (lower: string): number {
  // The hop-by-hop names are those of a response, plus the request's own below.
  if (isResponseHopByHop(lower)) return lower === 'connection' ? CONNECTION : DROPPED
  switch (lower) {
    case 'proxy-authorization':
    case 'host':
    case 'expect':
    case 'http2-settings':
      return DROPPED
    case 'x-api-key':
    case 'authorization':
      return CREDENTIAL
    case 'accept-encoding':
      return ACCEPT_ENCODING
    default:
      return FORWARDED
  }
}

export interface RequestHeaderOptions {
  /**
   * Replace client credentials with these headers (managed auth). Given as a
   * flat [name, value, ...] list, e.g. ['x-api-key', key]. `null` forwards the
   * client's own `x-api-key` / `authorization` (pass-through auth).
   */
  credentials: readonly string[] | null
  /** Headers added when the client did not send them, e.g. a default `anthropic-version`. */
  defaults: readonly string[]
  /** Drop `accept-encoding` (used when the proxy must read the response body). */
  dropAcceptEncoding?: boolean
}

/**
 * Build the upstream header list from Node's `rawHeaders`. One pass, no object
 * allocation per header; names in a `connection` header are dropped too.
 */
export function prepareRequestHeaders (rawHeaders: readonly string[], options: RequestHeaderOptions): string[] {
  const { credentials, defaults } = options
  // Sized once for every header that can be added: grown by push, the array was copied three or
  // four times on the way (about 0.3 KB of garbage a request).
  const out = new Array<string>(rawHeaders.length + (credentials?.length ?? 0) + defaults.length)
  let n = 0
  let connectionTokens: string | undefined
  let seenDefaults = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = (rawHeaders[i] as string).toLowerCase()
    const kind = requestHeaderKind(lower)
    if (kind !== FORWARDED) {
      if (kind === DROPPED) continue
      if (kind === CONNECTION) {
        connectionTokens = rawHeaders[i + 1]
        continue
      }
      if (kind === CREDENTIAL ? credentials !== null : options.dropAcceptEncoding === true) continue
    }
    if (defaults.length !== 0) {
      for (let d = 0; d < defaults.length; d += 2) {
        if (defaults[d] === lower) seenDefaults |= 1 << (d >> 1)
      }
    }
    out[n++] = lower
    out[n++] = rawHeaders[i + 1] as string
  }
  // Before the proxy's own headers are added: a client's `connection` header names only its own.
  if (connectionTokens !== undefined) {
    out.length = n
    removeConnectionTokens(out, connectionTokens)
    n = out.length
  }
  if (credentials !== null) {
    for (let i = 0; i < credentials.length; i++) out[n++] = credentials[i] as string
  }
  for (let d = 0; d < defaults.length; d += 2) {
    if ((seenDefaults & (1 << (d >> 1))) === 0) {
      out[n++] = defaults[d] as string
      out[n++] = defaults[d + 1] as string
    }
  }
  out.length = n
  return out
}

/** The request header names `requestHeaderKind` knows, by length, for comparisons with a name's bytes. */
const REQUEST_NAMES: readonly string[] = [
  ...RESPONSE_HOP_BY_HOP, 'proxy-authorization', 'host', 'expect', 'http2-settings', 'x-api-key', 'authorization', 'accept-encoding',
]
const REQUEST_NAMES_BY_LENGTH = byLength(REQUEST_NAMES)

/** `bytes[from, to)` is `name` (lower case) without regard to case; the bytes are token characters. */
function isName (bytes: Buffer, from: number, to: number, name: string): boolean {
  if (to - from !== name.length) return false
  // Of token characters, `| 0x20` lower-cases the letters and maps nothing else onto a letter or `-`.
  for (let i = 0; i < name.length; i++) if (((bytes[from + i] as number) | 0x20) !== name.charCodeAt(i)) return false
  return true
}

/** `requestHeaderKind` of the name `bytes[from, to)`. */
function requestHeaderKindOf (bytes: Buffer, from: number, to: number): number {
  const candidates = REQUEST_NAMES_BY_LENGTH[to - from]
  if (candidates !== undefined) {
    for (const name of candidates) if (isName(bytes, from, to, name)) return requestHeaderKind(name)
  }
  return FORWARDED
}

/**
 * A request's header lines for the upstream, encoded: what `prepareRequestHeaders` makes of the
 * same lines, as the bytes `writeHead` would write for it (`name: value` and CRLF per line, names
 * in lower case). The wire engine copies `block` into the head it sends; `list()` gives the
 * flat list for the undici engine.
 */
export class RequestHead {
  readonly block: Buffer
  readonly hasContentLength: boolean

  constructor (block: Buffer, hasContentLength: boolean) {
    this.block = block
    this.hasContentLength = hasContentLength
  }

  /** The lines as a flat [name, value, ...] list. */
  list (): string[] {
    const out: string[] = []
    const text = this.block.toString('latin1')
    let at = 0
    while (at < text.length) {
      const colon = text.indexOf(': ', at)
      const end = text.indexOf('\r\n', colon)
      out.push(text.slice(at, colon), text.slice(colon + 2, end))
      at = end + 2
    }
    return out
  }
}

/** Which lines `prepareRequestHead` keeps, reused by every call (it runs to its end before the next): no typed array a request. */
let keptScratch = new Uint8Array(64)

/**
 * `prepareRequestHeaders` for a head read as bytes: `lines` holds, per header line of `bytes`,
 * its name's start and end and its value's start and end (blanks around the value excluded).
 * The names are token characters and the values visible ASCII, blanks and tabs (the front's
 * plain requests). Returns null when a `connection` header names more than `keep-alive` or
 * `close` (the string path removes the headers it names).
 */
export function prepareRequestHead (bytes: Buffer, lines: readonly number[], options: RequestHeaderOptions): RequestHead | null {
  const { credentials, defaults } = options
  // Pass 1: which lines are kept (kept[k] = 1), the defaults seen, the length.
  const count = lines.length >> 2
  if (keptScratch.length < count) keptScratch = new Uint8Array(Math.max(count, 2 * keptScratch.length))
  const kept = keptScratch
  kept.fill(0, 0, count)
  let length = 0
  let seenDefaults = 0
  let hasContentLength = false
  for (let k = 0; k < count; k++) {
    const nameStart = lines[4 * k] as number
    const nameEnd = lines[4 * k + 1] as number
    const kind = requestHeaderKindOf(bytes, nameStart, nameEnd)
    if (kind !== FORWARDED) {
      if (kind === DROPPED) continue
      if (kind === CONNECTION) {
        const valueStart = lines[4 * k + 2] as number
        const valueEnd = lines[4 * k + 3] as number
        if (!isName(bytes, valueStart, valueEnd, 'keep-alive') && !isName(bytes, valueStart, valueEnd, 'close')) return null
        continue
      }
      if (kind === CREDENTIAL ? credentials !== null : options.dropAcceptEncoding === true) continue
    }
    for (let d = 0; d < defaults.length; d += 2) {
      if (isName(bytes, nameStart, nameEnd, defaults[d] as string)) seenDefaults |= 1 << (d >> 1)
    }
    if (isName(bytes, nameStart, nameEnd, 'content-length')) hasContentLength = true
    kept[k] = 1
    length += nameEnd - nameStart + (lines[4 * k + 3] as number) - (lines[4 * k + 2] as number) + 4 // ': ' and CRLF
  }
  if (credentials !== null) {
    for (let i = 0; i < credentials.length; i += 2) length += (credentials[i] as string).length + (credentials[i + 1] as string).length + 4
  }
  for (let d = 0; d < defaults.length; d += 2) {
    if ((seenDefaults & (1 << (d >> 1))) === 0) length += (defaults[d] as string).length + (defaults[d + 1] as string).length + 4
  }
  // Pass 2: the bytes.
  const block = Buffer.allocUnsafe(length)
  let at = 0
  for (let k = 0; k < count; k++) {
    if (kept[k] === 0) continue
    const nameEnd = lines[4 * k + 1] as number
    for (let i = lines[4 * k] as number; i < nameEnd; i++) {
      const c = bytes[i] as number
      block[at++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c
    }
    block[at++] = 0x3a // :
    block[at++] = 0x20
    at += bytes.copy(block, at, lines[4 * k + 2] as number, lines[4 * k + 3] as number)
    block[at++] = 0x0d
    block[at++] = 0x0a
  }
  if (credentials !== null) {
    for (let i = 0; i < credentials.length; i += 2) at = putLine(block, at, credentials[i] as string, credentials[i + 1] as string)
  }
  for (let d = 0; d < defaults.length; d += 2) {
    if ((seenDefaults & (1 << (d >> 1))) === 0) at = putLine(block, at, defaults[d] as string, defaults[d + 1] as string)
  }
  return new RequestHead(block, hasContentLength)
}

function putLine (target: Buffer, offset: number, name: string, value: string): number {
  let at = putLatin1(target, offset, name)
  target[at++] = 0x3a // :
  target[at++] = 0x20
  at = putLatin1(target, at, value)
  target[at++] = 0x0d
  target[at++] = 0x0a
  return at
}

function removeConnectionTokens (headers: string[], tokens: string): void {
  const value = tokens.trim().toLowerCase()
  // Nearly every client sends "keep-alive" (or "close"): names the drop list has removed already,
  // so the usual request needs no split, no array and no set (1.5 µs of the profile).
  if (value === 'keep-alive' || value === 'close') return
  for (const token of value.split(',')) {
    const name = token.trim()
    if (name === '') continue
    // Names already dropped need no search.
    const kind = requestHeaderKind(name)
    if (kind === DROPPED || kind === CONNECTION) continue
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i] === name) headers.splice(i, 2)
    }
  }
}

/** Facts read from response headers in the same pass that copies them. */
export interface ResponseHeaderFacts {
  isEventStream: boolean
  contentEncoding: string | undefined
  requestId: string | undefined
  contentType: string | undefined
  /** The response declared a content-length (kept in the copy). */
  hasContentLength: boolean
}

/**
 * Convert raw response headers (undici's Buffers or the wire engine's strings) to the flat string array
 * `ServerResponse.writeHead` takes, dropping hop-by-hop headers. Values are
 * copied byte-for-byte (latin1 is the identity mapping for header octets).
 */
export function copyResponseHeaders (raw: readonly Buffer[] | readonly string[], facts: ResponseHeaderFacts): string[] {
  // Room for one more header (the proxy's server-timing): pushing it must not grow the array.
  const out = new Array<string>(raw.length + 2)
  let n = 0
  for (let i = 0; i < raw.length; i += 2) {
    const rawName = raw[i] as Buffer | string
    const rawValue = raw[i + 1] as Buffer | string
    // The wire engine's parser hands over strings already; undici hands over Buffers.
    const name = typeof rawName === 'string' ? rawName : rawName.toString('latin1')
    const value = typeof rawValue === 'string' ? rawValue : rawValue.toString('latin1')
    // Only names of a length that a dropped or noted header has are lower-cased and
    // compared; the many anthropic-ratelimit-* headers skip that work.
    if (name.length < NOTED_LENGTH.length && NOTED_LENGTH[name.length] === 1) {
      const lower = name.toLowerCase()
      if (isResponseHopByHop(lower)) continue
      switch (lower) {
        case 'content-length':
          facts.hasContentLength = true
          break
        case 'content-type':
          facts.contentType = value
          facts.isEventStream = value.startsWith('text/event-stream')
          break
        case 'content-encoding':
          facts.contentEncoding = value
          break
        case 'request-id':
          facts.requestId = value
          break
      }
    }
    out[n++] = name
    out[n++] = value
  }
  out.length = n
  return out
}

/**
 * An HTTP/1.1 head, encoded straight into the buffer it is written from: two leading lines
 * (a status line, or a request line and its host line), each `name: value` line, then two closing
 * pieces (whole lines; any of the four may be empty). Header strings are latin1 (one byte per
 * character, as the parsers made them), so they are copied one byte per character, as
 * `buffer.write(text, 'latin1')` would: building the head as a string first allocated about
 * 3.5 KB a response (its concatenations, then the flat copy that writing it made).
 */
export function headLength (lead: string, lead2: string, headers: readonly string[], end: string, end2: string): number {
  let length = lead.length + lead2.length + end.length + end2.length + 2 * headers.length // ': ' and CRLF per line
  for (let i = 0; i < headers.length; i++) length += (headers[i] as string).length
  return length
}

/** A response's headers: a flat [name, value, ...] list, or the wire engine's head as it arrived. */
export type ResponseHeaders = readonly string[] | ResponseHead

/**
 * The length of a response head: its status line, the headers, then two closing pieces. The wire
 * engine's head is copied as the bytes it arrived as, its hop-by-hop lines left out, then the
 * lines the proxy adds (`extra`).
 */
export function responseHeadLength (statusLine: string, headers: ResponseHeaders, end: string, end2: string): number {
  if (headers instanceof ResponseHead) return statusLine.length + headers.runsLength + headers.extra.length + end.length + end2.length
  return headLength(statusLine, '', headers, end, end2)
}

/** Writes the head `responseHeadLength` measured at the start of `target`; returns its length. */
export function writeResponseHead (target: Buffer, statusLine: string, headers: ResponseHeaders, end: string, end2: string): number {
  if (!(headers instanceof ResponseHead)) return writeHead(target, statusLine, '', headers, end, end2)
  let at = putLatin1(target, 0, statusLine)
  const { block, runs } = headers
  for (let r = 0; r < runs.length; r += 2) at += block.copy(target, at, runs[r], runs[r + 1])
  at = putLatin1(target, at, headers.extra)
  at = putLatin1(target, at, end)
  return putLatin1(target, at, end2)
}

/** Writes the head `headLength` measured at the start of `target`; returns its length. */
export function writeHead (target: Buffer, lead: string, lead2: string, headers: readonly string[], end: string, end2: string): number {
  let at = putLatin1(target, 0, lead)
  at = putLatin1(target, at, lead2)
  for (let i = 0; i < headers.length; i += 2) {
    at = putLatin1(target, at, headers[i] as string)
    target[at++] = 0x3a // :
    target[at++] = 0x20
    at = putLatin1(target, at, headers[i + 1] as string)
    target[at++] = 0x0d
    target[at++] = 0x0a
  }
  at = putLatin1(target, at, end)
  return putLatin1(target, at, end2)
}

/** Writes a request head whose header lines are already encoded (`RequestHead`); returns its length. */
export function writeEncodedHead (target: Buffer, requestLine: string, hostLine: string, block: Buffer, extra: string): number {
  let at = putLatin1(target, 0, requestLine)
  at = putLatin1(target, at, hostLine)
  at += block.copy(target, at)
  at = putLatin1(target, at, extra)
  target[at++] = 0x0d
  target[at++] = 0x0a
  return at
}

function putLatin1 (target: Buffer, offset: number, text: string): number {
  let at = offset
  for (let i = 0; i < text.length; i++) target[at++] = text.charCodeAt(i)
  return at
}
