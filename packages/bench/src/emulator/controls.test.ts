import { describe, expect, it } from 'vitest'
import { ControlHeaderError, DEFAULT_CONTROLS, type EmulatorControls, emulatorControlHeaders, resolveControls } from './controls.js'

describe('resolveControls', () => {
  it('returns the defaults object itself when no control header is present', () => {
    const defaults = { ...DEFAULT_CONTROLS }
    expect(resolveControls({ 'x-api-key': 'k' }, defaults)).toBe(defaults)
  })

  it('round-trips emulatorControlHeaders', () => {
    const wanted: Partial<EmulatorControls> = {
      deltas: 0,
      deltaSize: 12,
      paceMs: 5,
      scenario: 'all',
      cacheCreationInputTokens: 3,
      cacheReadInputTokens: 4,
      deltaUsage: 'full',
      status: 503,
      errorMessage: 'busy',
      retryAfter: '1',
      shouldRetry: 'true',
      failFirst: 2,
      attemptKey: 'k',
      errorAfterEvents: 0,
      dropAfterEvents: 7,
      headersDelayMs: 9,
      stallAfterEvents: 1,
      stallMs: 2,
      encoding: 'br',
      redirect: 'http://elsewhere/',
    }
    const headers = emulatorControlHeaders(wanted)
    expect(Object.keys(headers)).toHaveLength(20)
    expect(resolveControls(headers, DEFAULT_CONTROLS)).toEqual({ ...DEFAULT_CONTROLS, ...wanted })
    expect(emulatorControlHeaders({ encoding: null, deltas: 1 })).toEqual({ 'x-emulator-deltas': '1' })
  })

  it.each([
    ['x-emulator-deltas', '-1'],
    ['x-emulator-deltas', '1.5'],
    ['x-emulator-deltas', ''],
    ['x-emulator-pace-ms', 'fast'],
    ['x-emulator-status', '200'],
    ['x-emulator-status', '600'],
    ['x-emulator-scenario', 'poetry'],
    ['x-emulator-encoding', 'deflate'],
  ])('rejects %s: %j naming the header', (header, value) => {
    expect(() => resolveControls({ [header]: value }, DEFAULT_CONTROLS)).toThrow(ControlHeaderError)
    expect(() => resolveControls({ [header]: value }, DEFAULT_CONTROLS)).toThrow(header)
  })
})
