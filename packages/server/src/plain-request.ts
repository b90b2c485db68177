import type { Buffer } from 'node:buffer'

/**
 * The plainest request a client sends, recognised in one pass over a read without llhttp: the
 * front serves such a read itself (./front.ts) and gives every other read to llhttp as it came.
 *
 * A read is plain when it holds exactly one whole request and nothing else:
 * - `POST` or `GET`, a target that starts with `/v1/` and has only URL characters (letters,
 *   digits and `-._~!$&'()*+,;=:@/?%`), `HTTP/1.1`;
 * - header lines of a token, a colon, optional blanks and a value of visible ASCII and blanks,
 *   each ended by CRLF, then CRLF;
 * - no `transfer-encoding`, `upgrade` or `expect`, a `connection` of `keep-alive` only, at most
 *   one `content-length` of digits only;
 * - a body of exactly the declared length (none without one), ending where the read ends;
 * - a head no longer than the server's header size limit.
 *
 * Everything else (another method or version, a line folded or ended by LF alone, obs-text, a
 * request split across reads or pipelined behind another) is llhttp's, so the requests accepted
 * here are a subset of those llhttp accepts, read the same way (the test checks this against
 * llhttp itself).
 */

/** Where `scanPlainRequest` found the parts of a plain request; reused for every read (one reader at a time). */
export interface PlainRequest {
  /** `POST` or `GET`. */
  method: string
  targetStart: number
  targetEnd: number
  /** Index after the blank line: where the body starts. */
  headEnd: number
  /** The declared length (0 when none was declared). */
  contentLength: number
  /** Per header line: name start, name end, value start, value end (blanks around the value excluded). */
  readonly lines: number[]
}

const CR = 13
const LF = 10
const SP = 32
const HTAB = 9

function table (accepted: string, ranges: readonly [number, number][] = []): Uint8Array {
  const out = new Uint8Array(256)
  for (const char of accepted) out[char.charCodeAt(0)] = 1
  for (const [from, to] of ranges) for (let c = from; c <= to; c++) out[c] = 1
  return out
}

const ALNUM: readonly [number, number][] = [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]]
/** RFC 9110 tchar. */
const TOKEN = table("!#$%&'*+-.^_`|~", ALNUM)
/** Characters of a target kept plain: unreserved, sub-delims, `:@/?%`. */
const TARGET = table("-._~!$&'()*+,;=:@/?%", ALNUM)
/** Value bytes kept plain: visible ASCII, space and tab. */
const VALUE = table('\t', [[0x20, 0x7e]])

const HTTP11 = [SP, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, CR, LF] // " HTTP/1.1\r\n"
const KEEP_ALIVE = 'keep-alive'

/** Lower-cased ASCII `bytes[at, at + word.length)` is `word` (lower case). */
function isWord (bytes: Buffer, at: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    if (((bytes[at + i] as number) | 0x20) !== word.charCodeAt(i)) return false
  }
  return true
}

/**
 * Whether `bytes[0, length)` is one plain request (above), its parts noted in `out`. `maxHeadBytes`
 * is the server's header size limit; llhttp counts fewer bytes of a head than its length, so a
 * head within it here is within it for llhttp too.
 */
export function scanPlainRequest (bytes: Buffer, length: number, maxHeadBytes: number, out: PlainRequest): boolean {
  let i: number
  if (length > 16 && bytes[0] === 0x50 && bytes[1] === 0x4f && bytes[2] === 0x53 && bytes[3] === 0x54 && bytes[4] === SP) {
    out.method = 'POST'
    i = 5
  } else if (length > 16 && bytes[0] === 0x47 && bytes[1] === 0x45 && bytes[2] === 0x54 && bytes[3] === SP) {
    out.method = 'GET'
    i = 4
  } else {
    return false
  }
  // "/v1/"
  if (bytes[i] !== 0x2f || bytes[i + 1] !== 0x76 || bytes[i + 2] !== 0x31 || bytes[i + 3] !== 0x2f) return false
  out.targetStart = i
  i += 4
  while (i < length && TARGET[bytes[i] as number] === 1) i++
  out.targetEnd = i
  if (i + HTTP11.length > length) return false
  for (let k = 0; k < HTTP11.length; k++) if (bytes[i + k] !== HTTP11[k]) return false
  i += HTTP11.length
  const lines = out.lines
  lines.length = 0
  let contentLength = -1
  for (;;) {
    if (i + 1 >= length) return false
    if (bytes[i] === CR) {
      if (bytes[i + 1] !== LF) return false
      i += 2
      break
    }
    const nameStart = i
    while (i < length && TOKEN[bytes[i] as number] === 1) i++
    if (i === nameStart || i >= length || bytes[i] !== 0x3a) return false // :
    const nameEnd = i
    i++
    while (i < length && (bytes[i] === SP || bytes[i] === HTAB)) i++
    const valueStart = i
    let valueEnd = i
    while (i < length && VALUE[bytes[i] as number] === 1) {
      if (bytes[i] !== SP && bytes[i] !== HTAB) valueEnd = i + 1
      i++
    }
    if (i + 1 >= length || bytes[i] !== CR || bytes[i + 1] !== LF) return false
    const lineEnd = i
    i += 2
    const nameLength = nameEnd - nameStart
    if (nameLength === 14 && isWord(bytes, nameStart, 'content-length')) {
      const digits = valueEnd - valueStart
      // Digits alone, up to the line's end (llhttp takes no blank after them).
      if (contentLength !== -1 || digits === 0 || digits > 15 || valueEnd !== lineEnd) return false
      let value = 0
      for (let k = valueStart; k < valueEnd; k++) {
        const digit = (bytes[k] as number) - 0x30
        if (digit < 0 || digit > 9) return false
        value = value * 10 + digit
      }
      contentLength = value
    } else if (nameLength === 10 && isWord(bytes, nameStart, 'connection')) {
      if (valueEnd - valueStart !== KEEP_ALIVE.length || !isWord(bytes, valueStart, KEEP_ALIVE)) return false
    } else if ((nameLength === 17 && isWord(bytes, nameStart, 'transfer-encoding')) ||
      (nameLength === 7 && isWord(bytes, nameStart, 'upgrade')) ||
      (nameLength === 6 && isWord(bytes, nameStart, 'expect'))) {
      return false
    }
    lines.push(nameStart, nameEnd, valueStart, valueEnd)
  }
  if (i > maxHeadBytes) return false
  out.headEnd = i
  const body = length - i
  if (contentLength === -1) {
    if (body !== 0) return false
    contentLength = 0
  } else if (body !== contentLength) {
    return false
  }
  out.contentLength = contentLength
  return true
}
