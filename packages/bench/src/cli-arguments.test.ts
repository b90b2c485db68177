import { describe, expect, it } from 'vitest'
import { parseCliArguments } from './cli-arguments.js'

describe('parseCliArguments', () => {
  it('reads the seed flags, repeatable --compare and presets', () => {
    const parsed = parseCliArguments([
      '--test-type', 'streaming', '--requests', '500', '--workers', '1,32', '--duration=2.5', '--output', 'r.json',
      '--quick', '--compare', 'undici-minimal', '--compare', 'mine=node proxy.js --flag=1', '--html', 'r.html', '--no-gate',
    ])
    expect(parsed.ok).toBe(true)
    if (!parsed.ok) return
    const { arguments: args } = parsed
    expect(args.run).toMatchObject({ testType: 'streaming', requests: 500, concurrencyLevels: [1, 32], durationSeconds: 2.5, quick: true })
    expect(args.run.compare).toEqual([{ preset: 'undici-minimal' }, { name: 'mine', command: 'node proxy.js --flag=1' }])
    expect(args).toMatchObject({ output: 'r.json', html: 'r.html', gate: 'off' })
  })

  it('takes --target with --upstream and --target-pid', () => {
    const parsed = parseCliArguments(['--target', 'http://127.0.0.1:8080/', '--upstream', 'http://127.0.0.1:9000', '--target-pid', '42'])
    expect(parsed.ok && parsed.arguments.run).toMatchObject({ target: 'http://127.0.0.1:8080', upstream: 'http://127.0.0.1:9000', targetPid: 42 })
  })

  it('reports every problem at once', () => {
    const parsed = parseCliArguments(['--requests', '0', '--test-type', 'soak', '--compare', 'nope', '--bogus', '--upstream', 'http://x', '--workers'])
    expect(parsed.ok).toBe(false)
    if (parsed.ok) return
    expect(parsed.errors).toEqual([
      "--requests must be a positive integer, got '0'",
      "--test-type must be one of latency, streaming, concurrent, all, got 'soak'",
      "--compare takes name=command or a preset (undici-minimal, fastify-http-proxy, nginx, node-relay), got 'nope'",
      "unknown option '--bogus' (see --help)",
      '--workers needs a value',
      '--upstream is only used with --target (otherwise the emulator is the upstream)',
    ])
  })
})
