/**
 * Runs the Anthropic API emulator as its own process (the benchmark pins it to
 * a CPU). Listens on `HOST` (default 127.0.0.1) and `PORT` (default 0 = any
 * free port), prints one JSON line `{"url":"http://127.0.0.1:NNNN"}` to stdout
 * and closes on SIGTERM or SIGINT. Requests are not recorded (`recordLimit: 0`).
 * `EMULATOR_KIND=fast` runs the bench's fast upstream (`createFastUpstream`)
 * instead of the full emulator.
 */
import { createEmulator } from './emulator/emulator.js'
import { createFastUpstream } from './emulator/fast-upstream.js'

function readPort(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`PORT must be an integer from 0 to 65535, got '${raw}'\n`)
    process.exit(1)
  }
  return port
}

const kind = process.env.EMULATOR_KIND || 'full'
if (kind !== 'full' && kind !== 'fast') {
  process.stderr.write(`EMULATOR_KIND must be 'full' or 'fast', got '${kind}'\n`)
  process.exit(1)
}
const host = process.env.HOST || '127.0.0.1'
const port = readPort(process.env.PORT)
// Nothing outside this process can read recorded requests, so record none.
const emulator = kind === 'fast' ? await createFastUpstream({ host, port }) : await createEmulator({ host, port, recordLimit: 0 })
process.stdout.write(`${JSON.stringify({ url: emulator.url })}\n`)

function shutdown(): void {
  emulator.close().then(
    () => process.exit(0),
    () => process.exit(1),
  )
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
