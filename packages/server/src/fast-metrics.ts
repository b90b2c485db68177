/**
 * Prometheus metrics for the per-request hot path, exposed through prom-client's
 * registry (`registry.registerMetric`) but recorded without its label handling:
 * prom-client hashes and validates the label object on every observation, even
 * through a cached child (~1 µs each, five per request). Here a series is
 * chosen by index or by a key the caller already built, and recording is a
 * bucket search and a few additions. Measured in docs/performance.md.
 */

type Labels = Readonly<Record<string, string>>

// --- the text exposition, laid out as prom-client's Registry writes it (0.0.4 format) ------------

function escapeString (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** `name="value",...` for a label set, escaped as prom-client escapes it; built once per series. */
function labelText (labels: Readonly<Record<string, string | number>>): string {
  let text = ''
  for (const [name, value] of Object.entries(labels)) {
    const escaped = typeof value === 'string' ? escapeString(value).replace(/"/g, '\\"') : value
    text += `${text === '' ? '' : ','}${name}="${escaped}"`
  }
  return text
}

/** A sample's value as prom-client writes it. */
function valueText (value: number): string {
  if (Number.isNaN(value)) return 'Nan'
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf'
  return `${value}`
}

function headerText (name: string, help: string, type: string): string {
  const escapedName = escapeString(name)
  return `# HELP ${escapedName} ${escapeString(help)}\n# TYPE ${escapedName} ${type}`
}

/** One series' bucket, sum and count lines (`labels`: its label text, '' for none). */
function histogramText (name: string, bucketLabels: readonly string[], labels: string, counts: Float64Array, sum: number, count: number): string {
  const tail = labels === '' ? '' : `,${labels}`
  let text = ''
  let cumulative = 0
  for (let b = 0; b < bucketLabels.length - 1; b++) {
    cumulative += counts[b] as number
    text += `\n${name}_bucket{${bucketLabels[b] as string}${tail}} ${valueText(cumulative)}`
  }
  text += `\n${name}_bucket{${bucketLabels[bucketLabels.length - 1] as string}${tail}} ${valueText(count)}`
  const braces = labels === '' ? '' : `{${labels}}`
  return `${text}\n${name}_sum${braces} ${valueText(sum)}\n${name}_count${braces} ${valueText(count)}`
}

interface MetricValue { value: number, labels: Record<string, string | number>, metricName?: string }

/** What prom-client's registry reads from a histogram registered with `registerMetric`. */
abstract class HistogramMetric {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  /** Upper bounds of the buckets, ascending (+Inf is implied). */
  protected readonly bounds: readonly number[]
  /** `le="<bound>"` of each bucket, `le="+Inf"` last: the text exposition's, built once. */
  protected readonly bucketLabels: readonly string[]

  constructor (options: { name: string, help: string, buckets: readonly number[] }) {
    this.name = options.name
    this.help = options.help
    this.bounds = options.buckets
    this.bucketLabels = [...options.buckets.map((bound) => labelText({ le: bound })), labelText({ le: '+Inf' })]
  }

  /** The metric in the text exposition format, exactly as prom-client's `Registry.metrics()` writes it. */
  abstract promText (): string
}

/** A histogram over label sets known up front; `observe(series, value)` takes the set's index. */
export class IndexedHistogram extends HistogramMetric {
  readonly #series: readonly Labels[]
  readonly #seriesText: readonly string[]
  readonly #buckets: Float64Array[]
  readonly #sums: Float64Array
  readonly #counts: Float64Array

  constructor (options: { name: string, help: string, series: readonly Labels[], buckets: readonly number[] }) {
    super(options)
    this.#series = options.series
    this.#seriesText = options.series.map(labelText)
    this.#buckets = options.series.map(() => new Float64Array(options.buckets.length))
    this.#sums = new Float64Array(options.series.length)
    this.#counts = new Float64Array(options.series.length)
  }

  observe (series: number, value: number): void {
    const buckets = this.#buckets[series] as Float64Array
    const bucket = bucketOf(this.bounds, value)
    if (bucket < buckets.length) buckets[bucket] = (buckets[bucket] as number) + 1
    this.#sums[series] = (this.#sums[series] as number) + value
    this.#counts[series] = (this.#counts[series] as number) + 1
  }

  get (): { name: string, help: string, type: 'histogram', aggregator: 'sum', values: MetricValue[] } {
    const values: MetricValue[] = []
    for (let s = 0; s < this.#series.length; s++) {
      histogramValues(values, this.name, this.bounds, this.#series[s] as Labels, this.#buckets[s] as Float64Array, this.#sums[s] as number, this.#counts[s] as number)
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  promText (): string {
    let text = headerText(this.name, this.help, this.type)
    for (let s = 0; s < this.#series.length; s++) {
      text += histogramText(this.name, this.bucketLabels, this.#seriesText[s] as string, this.#buckets[s] as Float64Array, this.#sums[s] as number, this.#counts[s] as number)
    }
    return text
  }

  reset (): void {
    for (const buckets of this.#buckets) buckets.fill(0)
    this.#sums.fill(0)
    this.#counts.fill(0)
  }
}

/** Index of the first bucket whose upper bound is >= value; `bounds.length` when above them all. */
function bucketOf (bounds: readonly number[], value: number): number {
  let bucket = 0
  while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++
  return bucket
}

/** Appends one series' cumulative buckets, sum and count, as prom-client lays them out. */
function histogramValues (values: MetricValue[], name: string, bounds: readonly number[], labels: Labels, counts: Float64Array, sum: number, count: number): void {
  const bucketName = `${name}_bucket`
  let cumulative = 0
  for (let b = 0; b < bounds.length; b++) {
    cumulative += counts[b] as number
    values.push({ value: cumulative, labels: { le: bounds[b] as number, ...labels }, metricName: bucketName })
  }
  values.push({ value: count, labels: { le: '+Inf', ...labels }, metricName: bucketName })
  values.push({ value: sum, labels: { ...labels }, metricName: `${name}_sum` })
  values.push({ value: count, labels: { ...labels }, metricName: `${name}_count` })
}

interface HistogramSeries { labels: Labels, text: string, counts: Float64Array, sum: number, count: number }

/**
 * A series key built by the caller: a string that is the same string object each time (so V8 has
 * its hash), or a number computed from label indexes. A string built per request (concatenated)
 * would be flattened and hashed on every lookup.
 */
export type SeriesKey = string | number

/** A histogram whose series are created on first use under a caller-built key (e.g. a model name). */
export class KeyedHistogram extends HistogramMetric {
  readonly #series = new Map<SeriesKey, HistogramSeries>()

  /** Record `value` in the series `key`; `labels` is called only when the series is new. */
  observe (key: SeriesKey, labels: () => Labels, value: number): void {
    let series = this.#series.get(key)
    if (series === undefined) {
      const set = labels()
      series = { labels: set, text: labelText(set), counts: new Float64Array(this.bounds.length), sum: 0, count: 0 }
      this.#series.set(key, series)
    }
    const bucket = bucketOf(this.bounds, value)
    if (bucket < series.counts.length) series.counts[bucket] = (series.counts[bucket] as number) + 1
    series.sum += value
    series.count++
  }

  get (): { name: string, help: string, type: 'histogram', aggregator: 'sum', values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const series of this.#series.values()) histogramValues(values, this.name, this.bounds, series.labels, series.counts, series.sum, series.count)
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  promText (): string {
    let text = headerText(this.name, this.help, this.type)
    for (const series of this.#series.values()) text += histogramText(this.name, this.bucketLabels, series.text, series.counts, series.sum, series.count)
    return text
  }

  reset (): void {
    this.#series.clear()
  }
}

/** A counter whose series are created on first use under a caller-built key. */
export class KeyedCounter {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly #series = new Map<SeriesKey, { labels: Labels, text: string, value: number }>()

  constructor (options: { name: string, help: string }) {
    this.name = options.name
    this.help = options.help
  }

  /** Add `amount` to the series `key`; `labels` is called only when the series is new. */
  inc (key: SeriesKey, labels: () => Labels, amount = 1): void {
    const series = this.#series.get(key)
    if (series !== undefined) series.value += amount
    else {
      const set = labels()
      this.#series.set(key, { labels: set, text: labelText(set), value: amount })
    }
  }

  get (): { name: string, help: string, type: 'counter', aggregator: 'sum', values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const series of this.#series.values()) values.push({ value: series.value, labels: { ...series.labels } })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** The metric in the text exposition format, exactly as prom-client's `Registry.metrics()` writes it. */
  promText (): string {
    let text = headerText(this.name, this.help, this.type)
    for (const series of this.#series.values()) text += `\n${this.name}${series.text === '' ? '' : `{${series.text}}`} ${valueText(series.value)}`
    return text
  }

  reset (): void {
    this.#series.clear()
  }
}
