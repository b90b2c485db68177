import { randomBytes } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const POOL_BYTES = 4096

let pool = randomBytes(POOL_BYTES)
let offset = 0

/**
 * Returns `prefix` followed by `length` random base62 characters, the shape of
 * Anthropic ids (`req_…`, `msg_…`, `msgbatch_…`, `file_…`, `toolu_…`).
 * Random bytes are drawn from a pooled buffer so ids cost no syscall per request.
 */
export function createId(prefix: string, length = 24): string {
  if (offset + length > pool.length) {
    pool = randomBytes(POOL_BYTES)
    offset = 0
  }
  let id = prefix
  for (let index = 0; index < length; index++) {
    id += ALPHABET.charAt((pool[offset++] ?? 0) % ALPHABET.length)
  }
  return id
}
