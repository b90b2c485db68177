#!/usr/bin/env node
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { BenchResult } from './bench-result.js'
import { parseCliArguments, USAGE } from './cli-arguments.js'
import { compareWithBaseline, createBaseline, type GateReport, gateFigures, parseBaseline, sanityCheck } from './gate.js'
import { renderHtmlReport } from './html-report.js'
import { stopOwnedProcessesSync } from './managed-process.js'
import { evaluatePerformanceTargets } from './performance-targets.js'
import { createProgressBar } from './progress-bar.js'
import { run } from './run.js'
import { formatGate, formatReport } from './terminal-report.js'

/** The committed baseline of this package. */
const DEFAULT_BASELINE = new URL('../baseline.json', import.meta.url).pathname

function gate(result: BenchResult, mode: 'auto' | 'force' | 'off', baselinePath: string | null): GateReport | { error: string } | null {
  if (mode === 'off' || result.interrupted) return null
  if (result.settings.quick && mode === 'auto') return sanityCheck(result)
  const path = resolve(baselinePath ?? DEFAULT_BASELINE)
  if (!existsSync(path)) {
    if (baselinePath !== null) return { error: `baseline ${path} does not exist` }
    process.stderr.write(`no baseline at ${path}: gate skipped (write one with --write-baseline)\n`)
    return null
  }
  try {
    const baseline = parseBaseline(readFileSync(path, 'utf8'), path)
    const upstream = baseline.emulator ?? 'full'
    if (upstream !== result.settings.emulator) {
      return { error: `the baseline ${path} was measured against the ${upstream} emulator and this run against the ${result.settings.emulator} one: their figures do not compare (run with --emulator ${upstream}, or --no-gate)` }
    }
    return compareWithBaseline(baseline, gateFigures(result), { complete: result.settings.testType === 'all' })
  } catch (error) {
    return { error: (error as Error).message }
  }
}

async function main(): Promise<number> {
  const parsed = parseCliArguments(process.argv.slice(2))
  if (!parsed.ok) {
    process.stderr.write(`apt-bench: ${parsed.errors.length} problem${parsed.errors.length === 1 ? '' : 's'} with the arguments:\n`)
    for (const error of parsed.errors) process.stderr.write(`  - ${error}\n`)
    process.stderr.write('Run apt-bench --help for the options.\n')
    return 2
  }
  const args = parsed.arguments
  if (args.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }

  const controller = new AbortController()
  let interrupts = 0
  const onInterrupt = (): void => {
    interrupts++
    if (interrupts === 1) {
      process.stderr.write('\ninterrupted: stopping the measurement and the child processes (Ctrl-C again to quit at once)\n')
      controller.abort()
      return
    }
    stopOwnedProcessesSync()
    process.exit(130)
  }
  process.on('SIGINT', onInterrupt)
  process.on('SIGTERM', onInterrupt)
  process.on('exit', stopOwnedProcessesSync)

  let result: BenchResult
  try {
    result = await run({ ...args.run, pinLoadGenerator: true, signal: controller.signal, onProgress: createProgressBar(process.stderr) })
  } catch (error) {
    process.stderr.write(`apt-bench: the run failed: ${error instanceof Error ? error.message : String(error)}\n`)
    return controller.signal.aborted ? 130 : 3
  }

  process.stdout.write(`${formatReport(result)}\n`)
  const report = gate(result, args.gate, args.baseline)
  if (report !== null && 'error' in report) {
    process.stderr.write(`apt-bench: ${report.error}\n`)
    return 2
  }
  if (report !== null) process.stdout.write(`${formatGate(report)}\n`)
  else if (result.interrupted) process.stdout.write('\nInterrupted: the gate was not applied.\n')

  if (args.output !== null) {
    writeFileSync(args.output, `${JSON.stringify({ ...result, performanceTargets: evaluatePerformanceTargets(result), gate: report }, null, 2)}\n`)
    process.stderr.write(`results written to ${args.output}\n`)
  }
  if (args.html !== null) {
    writeFileSync(args.html, renderHtmlReport(result, report ?? undefined))
    process.stderr.write(`HTML report written to ${args.html}\n`)
  }
  if (args.writeBaseline !== null && !result.interrupted) {
    writeFileSync(args.writeBaseline, `${JSON.stringify(createBaseline(result), null, 2)}\n`)
    process.stderr.write(`baseline written to ${args.writeBaseline}\n`)
  }
  if (result.interrupted) return 130
  return report?.regressed === true ? 1 : 0
}

main().then(
  // Exit explicitly: stdout and stderr are synchronous on Linux, and nothing else should keep running.
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`apt-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(3)
  },
)
