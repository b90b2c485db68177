import type { ProgressEvent } from './progress-event.js'

const BAR_WIDTH = 28
const PLAIN_EVERY_MS = 5000

function clock(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000))
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`
}

/**
 * Renders `run()` progress on a stream (stderr): a bar with ETA redrawn in
 * place on a TTY, a plain line per phase (at most one per 5 s) otherwise.
 */
export function createProgressBar(stream: NodeJS.WriteStream): (event: ProgressEvent) => void {
  const tty = stream.isTTY === true
  let drawn = false
  let lastPhase = ''
  let lastPlainAt = -Infinity
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K')
    drawn = false
  }
  return (event) => {
    if (event.type === 'note') {
      clear()
      stream.write(`note: ${event.message}\n`)
      return
    }
    if (event.type === 'done') {
      clear()
      stream.write(`benchmark finished in ${clock(event.elapsedMs)}\n`)
      return
    }
    const fraction = event.totalEstimateMs > 0 ? Math.min(1, event.doneEstimateMs / event.totalEstimateMs) : 0
    // Scale the remaining estimate by how fast the finished part went compared with its estimate.
    const pace = event.doneEstimateMs > 0 ? event.elapsedMs / event.doneEstimateMs : 1
    const eta = fraction > 0 ? clock((event.totalEstimateMs - event.doneEstimateMs) * Math.min(Math.max(pace, 0.5), 3)) : '?:??'
    const percent = `${Math.round(fraction * 100)}%`.padStart(4)
    if (tty) {
      const filled = Math.round(fraction * BAR_WIDTH)
      const line = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percent} ETA ${eta}  ${event.phase}: ${event.label}`
      stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, (stream.columns ?? 100) - 1))}`)
      drawn = true
      return
    }
    if (event.phase !== lastPhase || event.elapsedMs - lastPlainAt >= PLAIN_EVERY_MS) {
      stream.write(`[apt-bench] ${percent} ETA ${eta} ${event.phase}: ${event.label}\n`)
      lastPhase = event.phase
      lastPlainAt = event.elapsedMs
    }
  }
}
