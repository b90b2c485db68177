/** Figures of one history interval (the time since the previous entry). */
export interface HistoryEntry {
  /** End of the interval (monitor clock, ms). */
  at: number
  intervalMs: number
  count: number
  errors: number
  /** null when count is 0. */
  errorRate: number | null
  requestsPerSecond: number
  bytes: number
  p50Ms: number | null
  p95Ms: number | null
  p99Ms: number | null
  meanMs: number | null
  maxMs: number | null
  ttfbP95Ms: number | null
  ttftP95Ms: number | null
  /** Latest memory sample when the entry was taken (null: memory sampling off). */
  rssBytes: number | null
  heapUsedBytes: number | null
  /** p99 event-loop delay of the latest sample (null: event-loop sampling off). */
  eventLoopDelayP99Ms: number | null
}

/** Fixed-capacity ring: pushing onto a full ring drops the oldest entry. */
export class HistoryRing<T> {
  readonly capacity: number
  readonly #items: (T | undefined)[]
  #next = 0
  #size = 0

  constructor (capacity: number) {
    this.capacity = capacity
    this.#items = new Array<T | undefined>(capacity)
  }

  get size (): number {
    return this.#size
  }

  push (item: T): void {
    if (this.capacity === 0) return
    this.#items[this.#next] = item
    this.#next = (this.#next + 1) % this.capacity
    if (this.#size < this.capacity) this.#size++
  }

  /** Entries, oldest first. */
  toArray (): T[] {
    const out: T[] = []
    const first = (this.#next - this.#size + this.capacity) % this.capacity
    for (let offset = 0; offset < this.#size; offset++) out.push(this.#items[(first + offset) % this.capacity] as T)
    return out
  }
}
