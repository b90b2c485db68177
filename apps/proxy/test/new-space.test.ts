import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { hasSemiSpaceFlag, loadConfig } from '../src/config.js'

const MODULE = fileURLToPath(new URL('../dist/new-space.js', import.meta.url))
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const MIB = 1024 * 1024

/**
 * A child process that keeps many young objects alive across scavenges, the
 * pressure under which V8 doubles its semi-spaces, yielding to the event loop
 * between small batches as a server does; prints the largest new space seen.
 */
const GROW = `
const { limitNewSpace, newSpaceSize } = await import(process.argv[1])
const limit = limitNewSpace(Number(process.argv[2]))
const keep = []
let max = 0
for (let round = 0; round < 800; round++) {
  for (let i = 0; i < 4000; i++) {
    keep.push({ round, i, list: [i] })
    if (keep.length > 300000) keep.splice(0, 150000)
  }
  max = Math.max(max, newSpaceSize())
  await new Promise((resolve) => setImmediate(resolve))
}
limit.close()
process.stdout.write(JSON.stringify({ max, maxBytes: limit.maxBytes }))
`

async function grow (maxSemiSpaceMiB: number): Promise<{ max: number, maxBytes: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', GROW, MODULE, String(maxSemiSpaceMiB)], { timeout: 60_000 })
  return JSON.parse(stdout) as { max: number, maxBytes: number }
}

describe('the new-space ceiling', () => {
  test('V8 left alone grows the new space past 8 MiB under this load (the control)', async () => {
    const { max, maxBytes } = await grow(0)
    expect(maxBytes).toBe(0)
    expect(max).toBeGreaterThan(8 * MIB)
  })

  test('a 4 MiB semi-space ceiling lets the new space grow to 8 MiB and no further', async () => {
    const { max, maxBytes } = await grow(4)
    expect(maxBytes).toBe(8 * MIB)
    expect(max).toBe(8 * MIB)
  })

  test('a 1 MiB ceiling holds the new space at its initial 2 MiB', async () => {
    const { max } = await grow(1)
    expect(max).toBe(2 * MIB)
  })
})

describe('APT_MAX_SEMI_SPACE_MB', () => {
  const semiSpace = (env: Record<string, string>): number | string[] => {
    const result = loadConfig(env)
    return result.ok ? result.config.maxSemiSpaceMiB : result.errors
  }

  test('defaults to 4 MiB; 0 leaves V8 its own sizing; bad values are reported', () => {
    expect(semiSpace({})).toBe(4)
    expect(semiSpace({ APT_MAX_SEMI_SPACE_MB: '16' })).toBe(16)
    expect(semiSpace({ APT_MAX_SEMI_SPACE_MB: '0' })).toBe(0)
    expect(semiSpace({ APT_MAX_SEMI_SPACE_MB: 'lots' })).toEqual(["APT_MAX_SEMI_SPACE_MB must be an integer between 0 and 1024, got 'lots'"])
  })

  test('a --max-semi-space-size that Node was given wins over it', () => {
    expect(semiSpace({ NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=32' })).toBe(0)
    expect(semiSpace({ NODE_OPTIONS: '--max-old-space-size=512', APT_MAX_SEMI_SPACE_MB: '8' })).toBe(8)
    expect(hasSemiSpaceFlag(['--max_semi_space_size', '8'])).toBe(true)
    expect(hasSemiSpaceFlag(['--max-semi-space-sizes=8', '--max-old-space-size=8'])).toBe(false)
    expect(hasSemiSpaceFlag(undefined)).toBe(false)
  })
})

/** The proxy's `apt proxy ready` line, then SIGTERM. */
async function readyLine (env: Record<string, string>): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ANTHROPIC_UPSTREAM_URL: 'http://127.0.0.1:9', PORT: '0', HOST: '127.0.0.1', APT_ENV_FILE: '/nonexistent', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  try {
    for (let i = 0; i < 400; i++) {
      const line = output.split('\n').find((text) => text.includes('"apt proxy ready"'))
      if (line !== undefined) return JSON.parse(line) as Record<string, unknown>
      if (child.exitCode !== null) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`no ready line:\n${output}`)
  } finally {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
}

describe('the proxy process', () => {
  test('states its ceiling when ready: 4 MiB by default, V8\'s sizing when Node was given its own flag', async () => {
    expect((await readyLine({})).max_semi_space_mib).toBe(4)
    expect((await readyLine({ APT_MAX_SEMI_SPACE_MB: '2' })).max_semi_space_mib).toBe(2)
    expect((await readyLine({ NODE_OPTIONS: '--max-semi-space-size=8' })).max_semi_space_mib).toBe('v8 default')
  })
})
