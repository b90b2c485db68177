/**
 * Prometheus metrics for the per-request hot path, exposed through prom-client's
 * registry (`registry.registerMetric`) but recorded without its label handling:
 * prom-client hashes and validates the label object on every observation, even
 * through a cached child (~1 µs each, five per request). Here a series is
 * chosen by index or by a key the caller already built, and recording is a
 * bucket search and a few additions. Measured in docs/performance.md.
 */

type Labels = Readonly<Record<string, string>>

interface MetricValue { value: number, labels: Record<string, string | number>, metricName?: string }

/** A histogram over label sets known up front; `observe(series, value)` takes the set's index. */
export class IndexedHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly #series: readonly Labels[]
  readonly #bounds: readonly number[]
  readonly #buckets: Float64Array[]
  readonly #sums: Float64Array
  readonly #counts: Float64Array

  constructor (options: { name: string, help: string, series: readonly Labels[], buckets: readonly number[] }) {
    this.name = options.name
    this.help = options.help
    this.#series = options.series
    this.#bounds = options.buckets
    this.#buckets = options.series.map(() => new Float64Array(options.buckets.length))
    this.#sums = new Float64Array(options.series.length)
    this.#counts = new Float64Array(options.series.length)
  }

  observe (series: number, value: number): void {
    const bounds = this.#bounds
    let bucket = 0
    while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++
    const buckets = this.#buckets[series] as Float64Array
    if (bucket < bounds.length) buckets[bucket] = (buckets[bucket] as number) + 1
    this.#sums[series] = (this.#sums[series] as number) + value
    this.#counts[series] = (this.#counts[series] as number) + 1
  }

  get (): { name: string, help: string, type: 'histogram', aggregator: 'sum', values: MetricValue[] } {
    const values: MetricValue[] = []
    const bucketName = `${this.name}_bucket`
    for (let s = 0; s < this.#series.length; s++) {
      const labels = this.#series[s] as Labels
      const counts = this.#buckets[s] as Float64Array
      let cumulative = 0
      for (let b = 0; b < this.#bounds.length; b++) {
        cumulative += counts[b] as number
        values.push({ value: cumulative, labels: { le: this.#bounds[b] as number, ...labels }, metricName: bucketName })
      }
      values.push({ value: this.#counts[s] as number, labels: { le: '+Inf', ...labels }, metricName: bucketName })
      values.push({ value: this.#sums[s] as number, labels: { ...labels }, metricName: `${this.name}_sum` })
      values.push({ value: this.#counts[s] as number, labels: { ...labels }, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const buckets of this.#buckets) buckets.fill(0)
    this.#sums.fill(0)
    this.#counts.fill(0)
  }
}

/** A counter whose series are created on first use under a caller-built key. */
export class KeyedCounter {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly #series = new Map<string, { labels: Labels, value: number }>()

  constructor (options: { name: string, help: string }) {
    this.name = options.name
    this.help = options.help
  }

  /** Add `amount` to the series `key`; `labels` is called only when the series is new. */
  inc (key: string, labels: () => Labels, amount = 1): void {
    const series = this.#series.get(key)
    if (series !== undefined) series.value += amount
    else this.#series.set(key, { labels: labels(), value: amount })
  }

  get (): { name: string, help: string, type: 'counter', aggregator: 'sum', values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const series of this.#series.values()) values.push({ value: series.value, labels: { ...series.labels } })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    this.#series.clear()
  }
}
