import { createRequire } from 'node:module'

/**
 * Node's own llhttp binding, the C++ parser node:http uses, as `@apt/server`'s front drives it
 * (requests). `_http_common` is its (undocumented) home. The wire engine reads responses with
 * its own reader (response-reader.ts).
 */

export interface HTTPParserInstance {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number, connections?: unknown): void
  execute (data: Buffer): number | Error
  finish (): number | Error | undefined
  /** Read straight from a stream handle in C++ (as node:http's server does); results come to kOnExecute. */
  consume (handle: object): void
  unconsume (): void
  /** Inside kOnExecute: the read being parsed. */
  getCurrentBuffer (): Buffer
  /** Milliseconds since the request being parsed began; 0 when none is in progress (between requests). */
  duration (): number
  /** Leave the node:http connection list given to `initialize`. */
  remove (): void
  close (): void
  socket?: unknown
  [key: number]: unknown
}

export interface HTTPParserClass {
  new (): HTTPParserInstance
  REQUEST: number
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kOnExecute: number
  kLenientNone: number
  kLenientAll: number
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: HTTPParserClass, methods: string[] }

export const HTTPParser: HTTPParserClass = common.HTTPParser
/** The method names node:http knows (`http.METHODS`). */
export const HTTP_METHODS: readonly string[] = common.methods
export const kOnHeaders = HTTPParser.kOnHeaders | 0
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete | 0
export const kOnBody = HTTPParser.kOnBody | 0
export const kOnMessageComplete = HTTPParser.kOnMessageComplete | 0
export const kOnExecute = HTTPParser.kOnExecute | 0

/** The callbacks llhttp calls on a parser; `this` is the parser. */
export interface ParserCallbacks {
  onHeaders: (...args: never[]) => unknown
  onHeadersComplete: (...args: never[]) => unknown
  onBody: (...args: never[]) => unknown
  onMessageComplete: (...args: never[]) => unknown
  /** Only for a parser that consumes a stream (`consume()`): called after each read. */
  onExecute?: (...args: never[]) => unknown
}

/**
 * A subclass of Node's parser whose prototype carries `callbacks`. node:http sets them on each
 * parser by index, which gives every parser a table of its own; llhttp reads them with a property
 * get, which follows the prototype chain, so one prototype serves every parser
 * (docs/performance.md, change 30).
 */
export function parserClass (callbacks: ParserCallbacks): HTTPParserClass {
  class Parser extends HTTPParser {}
  const prototype = Parser.prototype as unknown as Record<number, unknown>
  prototype[kOnHeaders] = callbacks.onHeaders
  prototype[kOnHeadersComplete] = callbacks.onHeadersComplete
  prototype[kOnBody] = callbacks.onBody
  prototype[kOnMessageComplete] = callbacks.onMessageComplete
  if (callbacks.onExecute !== undefined) prototype[kOnExecute] = callbacks.onExecute
  return Parser as unknown as HTTPParserClass
}
