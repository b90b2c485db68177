import type { CompareTarget, EmulatorKind, RunOptions, TestType } from './bench-options.js'
import { isReferencePreset, REFERENCE_PRESETS } from './references/reference-presets.js'

export interface CliArguments {
  help: boolean
  run: RunOptions
  /** Where to write the JSON result. */
  output: string | null
  /** Where to write the HTML report. */
  html: string | null
  /** Baseline file; null = the package's committed `baseline.json`. */
  baseline: string | null
  /** `auto`: baseline in full mode, sanity checks in quick mode; `force`: baseline even in quick mode. */
  gate: 'auto' | 'force' | 'off'
  /** Write this run's gated figures as a new baseline file. */
  writeBaseline: string | null
}

export type ParseResult = { ok: true, arguments: CliArguments } | { ok: false, errors: string[] }

export const USAGE = `Usage: apt-bench [options]

Benchmarks the apt proxy against a direct connection to the Anthropic API
emulator (and optional reference proxies), rounds interleaved, and gates the
result against a committed baseline.

Options:
  --test-type T        latency | streaming | concurrent | all (default all)
  --requests N         requests per target and round of the latency test (default 2000, quick 300)
  --workers N[,N...]   concurrency levels of the load test (default 1,16,128; quick 1,128)
  --duration S         measured seconds per target, level and round (default 1.5, quick 0.6)
  --rounds N           interleaved rounds (default 3, quick 2)
  --emulator K         the upstream: fast (default; the bench's two exchanges from prebuilt
                       bytes, so the load side outruns every proxy) or full (the whole emulator)
  --quick              short run (about 20 s) that proves the tool works
  --output FILE        write every figure and the machine facts as JSON
  --html FILE          write an HTML report with charts (no network needed to open it)
  --target URL         benchmark an already running proxy instead of starting one
  --target-pid PID     its process id, to measure its CPU time and memory
  --upstream URL       with --target: the upstream to measure as "direct"
  --compare SPEC       another proxy, side by side: name=shell command (gets UPSTREAM_URL
                       and PORT, must listen on 127.0.0.1:$PORT) or a preset:
                       ${REFERENCE_PRESETS.join(', ')}. Repeatable.
  --references         also measure every preset (default in a full self-contained run)
  --no-references      do not measure the presets by default
  --stream-levels L    paced-stream levels, e.g. 64,128,256 (default 64,...,1024; quick 64,128)
  --p99-bound-ms MS    p99 bound of "highest rate within the p99 bound" (default 10)
  --no-pin             do not pin processes to CPUs with taskset
  --baseline FILE      baseline to gate against (default packages/bench/baseline.json)
  --gate               gate against the baseline even in quick mode
  --no-gate            do not gate (exit 0 unless the run failed)
  --write-baseline F   write this run's gated figures, with default tolerances, to F
  -h, --help           this text

Exit codes: 0 ok, 1 a gated figure regressed, 2 bad arguments, 3 the run failed,
130 interrupted (Ctrl-C; what was measured is still reported).`

const TEST_TYPES: readonly TestType[] = ['latency', 'streaming', 'concurrent', 'all']

/** Parses the command line; reports every problem at once. */
export function parseCliArguments(argv: readonly string[]): ParseResult {
  const errors: string[] = []
  const run: RunOptions = {}
  const compare: CompareTarget[] = []
  const result: CliArguments = { help: false, run, output: null, html: null, baseline: null, gate: 'auto', writeBaseline: null }
  const positiveInteger = (flag: string, raw: string): number | undefined => {
    const value = Number(raw)
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
      errors.push(`${flag} must be a positive integer, got '${raw}'`)
      return undefined
    }
    return value
  }
  const positiveNumber = (flag: string, raw: string): number | undefined => {
    const value = Number(raw)
    if (raw.trim() === '' || !Number.isFinite(value) || value <= 0) {
      errors.push(`${flag} must be a positive number, got '${raw}'`)
      return undefined
    }
    return value
  }
  const list = (flag: string, raw: string): number[] | undefined => {
    const values = raw.split(',').map((part) => positiveInteger(flag, part.trim()))
    return values.every((value) => value !== undefined) ? (values as number[]) : undefined
  }
  const url = (flag: string, raw: string): string | undefined => {
    try {
      const parsed = new URL(raw)
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol')
      return raw.replace(/\/+$/, '')
    } catch {
      errors.push(`${flag} must be an http(s) URL, got '${raw}'`)
      return undefined
    }
  }

  for (let index = 0; index < argv.length; index++) {
    const raw = argv[index] as string
    const equals = raw.startsWith('--') ? raw.indexOf('=') : -1
    const flag = equals > 0 ? raw.slice(0, equals) : raw
    let inline: string | undefined = equals > 0 ? raw.slice(equals + 1) : undefined
    const value = (): string | undefined => {
      if (inline !== undefined) {
        const text = inline
        inline = undefined
        return text
      }
      const next = argv[index + 1]
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        errors.push(`${flag} needs a value`)
        return undefined
      }
      index++
      return next
    }
    const set = <Value>(parsed: Value | undefined, apply: (value: Value) => void): void => {
      if (parsed !== undefined) apply(parsed)
    }
    switch (flag) {
      case '-h':
      case '--help':
        result.help = true
        break
      case '--quick':
        run.quick = true
        break
      case '--test-type': {
        const text = value()
        if (text === undefined) break
        if ((TEST_TYPES as readonly string[]).includes(text)) run.testType = text as TestType
        else errors.push(`--test-type must be one of ${TEST_TYPES.join(', ')}, got '${text}'`)
        break
      }
      case '--emulator': {
        const text = value()
        if (text === undefined) break
        if (text === 'fast' || text === 'full') run.emulator = text as EmulatorKind
        else errors.push(`--emulator must be fast or full, got '${text}'`)
        break
      }
      case '--requests':
        set(value(), (text) => set(positiveInteger(flag, text), (parsed) => { run.requests = parsed }))
        break
      case '--workers':
        set(value(), (text) => set(list(flag, text), (parsed) => { run.concurrencyLevels = parsed }))
        break
      case '--duration':
        set(value(), (text) => set(positiveNumber(flag, text), (parsed) => { run.durationSeconds = parsed }))
        break
      case '--rounds':
        set(value(), (text) => set(positiveInteger(flag, text), (parsed) => { run.rounds = parsed }))
        break
      case '--stream-levels':
        set(value(), (text) => set(list(flag, text), (parsed) => { run.streamLevels = parsed }))
        break
      case '--p99-bound-ms':
        set(value(), (text) => set(positiveNumber(flag, text), (parsed) => { run.p99BoundMs = parsed }))
        break
      case '--output':
        set(value(), (text) => { result.output = text })
        break
      case '--html':
        set(value(), (text) => { result.html = text })
        break
      case '--target':
        set(value(), (text) => set(url(flag, text), (parsed) => { run.target = parsed }))
        break
      case '--target-pid':
        set(value(), (text) => set(positiveInteger(flag, text), (parsed) => { run.targetPid = parsed }))
        break
      case '--upstream':
        set(value(), (text) => set(url(flag, text), (parsed) => { run.upstream = parsed }))
        break
      case '--compare': {
        const text = value()
        if (text === undefined) break
        const split = text.indexOf('=')
        if (split < 0) {
          if (isReferencePreset(text)) compare.push({ preset: text })
          else errors.push(`--compare takes name=command or a preset (${REFERENCE_PRESETS.join(', ')}), got '${text}'`)
        } else {
          const name = text.slice(0, split).trim()
          const command = text.slice(split + 1).trim()
          if (!/^[\w.-]+$/.test(name) || name === 'direct' || name === 'proxy') errors.push(`--compare name must be letters, digits, '.', '_' or '-' and not direct/proxy, got '${name}'`)
          else if (command === '') errors.push(`--compare ${name}= needs a command`)
          else compare.push(isReferencePreset(command) ? { name, preset: command } : { name, command })
        }
        break
      }
      case '--references':
        run.references = true
        break
      case '--no-references':
        run.references = false
        break
      case '--no-pin':
        run.pin = false
        break
      case '--baseline':
        set(value(), (text) => { result.baseline = text })
        break
      case '--gate':
        result.gate = 'force'
        break
      case '--no-gate':
        result.gate = 'off'
        break
      case '--write-baseline':
        set(value(), (text) => { result.writeBaseline = text })
        break
      default:
        errors.push(`unknown option '${raw}' (see --help)`)
    }
    if (inline !== undefined) errors.push(`${flag} takes no value`)
  }
  if (compare.length > 0) run.compare = compare
  if (run.targetPid !== undefined && run.target === undefined) errors.push('--target-pid needs --target')
  if (run.upstream !== undefined && run.target === undefined) errors.push('--upstream is only used with --target (otherwise the emulator is the upstream)')
  if (run.emulator !== undefined && run.target !== undefined) errors.push('--emulator is not used with --target (no emulator is started)')
  return errors.length > 0 ? { ok: false, errors } : { ok: true, arguments: result }
}
