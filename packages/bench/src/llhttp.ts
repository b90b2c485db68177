import { createRequire } from 'node:module'

/**
 * Node's own llhttp binding (`_http_common`, undocumented), as the bench's fast upstream and load
 * generator drive it: `execute()` on each read, callbacks in the numbered slots. `@apt/adapter`
 * has a fuller typing of the same binding for the proxy, but the bench depends on `@apt/monitor`
 * alone (STYLE.md, "Dependency direction"), so it declares the little it uses here.
 */
export interface Parser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  execute (data: Buffer): number | Error
  finish (): number | Error | undefined
  /** Frees the parser; never from inside one of its callbacks. */
  close (): void
  [slot: number]: unknown
}

interface ParserClass {
  new (): Parser
  REQUEST: number
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kLenientNone: number
}

export const HTTPParser: ParserClass = (createRequire(import.meta.url)('_http_common') as { HTTPParser: ParserClass }).HTTPParser
export const kOnHeaders = HTTPParser.kOnHeaders | 0
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete | 0
export const kOnBody = HTTPParser.kOnBody | 0
export const kOnMessageComplete = HTTPParser.kOnMessageComplete | 0
