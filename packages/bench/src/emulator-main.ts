/**
 * Runs the Anthropic API emulator as its own process (the benchmark pins it to
 * a CPU). Listens on `HOST` (default 127.0.0.1) and `PORT` (default 0 = any
 * free port), prints one JSON line `{"url":"http://127.0.0.1:NNNN"}` to stdout
 * and closes on SIGTERM or SIGINT. Requests are not recorded (`recordLimit: 0`).
 */
import { createEmulator } from './emulator/emulator.js'

function readPort(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`PORT must be an integer from 0 to 65535, got '${raw}'\n`)
    process.exit(1)
  }
  return port
}

// Nothing outside this process can read recorded requests, so record none.
const emulator = await createEmulator({ host: process.env.HOST || '127.0.0.1', port: readPort(process.env.PORT), recordLimit: 0 })
process.stdout.write(`${JSON.stringify({ url: emulator.url })}\n`)

function shutdown(): void {
  emulator.close().then(
    () => process.exit(0),
    () => process.exit(1),
  )
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
